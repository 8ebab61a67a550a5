# embed.cmake: write a C file holding a text file as a NUL-terminated array.
# cmake -DIN=kernels.cuh -DOUT=kernels_cuh.c -DNAME=mor_cuda_kernels_cuh -P embed.cmake
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" hex "${hex}")
file(WRITE ${OUT} "/* generated from ${IN} by embed.cmake */\nconst char ${NAME}[] = {\n${hex}0x00};\n")
