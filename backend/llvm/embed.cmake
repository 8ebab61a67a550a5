# embed.cmake: cmake -DIN=file -DOUT=file.c -DSYM=name -P embed.cmake
# writes `const unsigned char SYM[]` and `const unsigned long SYM_size`.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){24})" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* generated from ${IN} by embed.cmake: do not edit */\n"
  "const unsigned char ${SYM}[] __attribute__((aligned(16))) = {\n${body}\n};\n"
  "const unsigned long ${SYM}_size = ${bytes};\n")
