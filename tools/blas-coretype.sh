#!/bin/sh
# Prints the OPENBLAS_CORETYPE that `make demo` and `make bench` set for their own commands when
# OpenBLAS runs one of its pre-AVX2 cores on a CPU with AVX2 or AVX-512F (Debian's 0.3.21 takes CPUs
# it does not know, such as Intel family 6 model 207, for a Prescott: OpenBLAS issue 4267), and says
# so on stderr. Prints nothing when OPENBLAS_CORETYPE is set already (the caller's choice stands) or
# the core is fine. The cores are those of Platform.preAVX2Cores (Sources/SDLSTMCore/RuntimeInfo.swift),
# whose warning the library prints for the programs that these targets do not start.
[ -n "${OPENBLAS_CORETYPE:-}" ] && exit 0
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null) "
case "$flags" in
*" avx512f "*) remedy=SkylakeX ;;
*" avx2 "*" fma "* | *" fma "*" avx2 "*) remedy=Haswell ;;
*) exit 0 ;;
esac
# OpenBLAS picks its core when it loads, so ask a program of its own.
tmp=$(mktemp -d) || exit 0
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' '#include <stdio.h>' 'char *openblas_get_corename(void);' \
    'int main(void) { puts(openblas_get_corename()); return 0; }' > "$tmp/core.c"
"${CC:-cc}" "$tmp/core.c" -o "$tmp/core" -lopenblas 2>/dev/null || exit 0
core=$("$tmp/core") || exit 0
case "$(printf '%s' "$core" | tr 'A-Z' 'a-z')" in
katmai | coppermine | northwood | prescott | banias | atom | core2 | penryn | dunnington | nehalem | athlon | \
    opteron | opteron_sse3 | barcelona | nano | sandybridge | bobcat | bulldozer | piledriver) ;;
*) exit 0 ;;
esac
echo "sdlstm: OpenBLAS runs its $core kernels on this $([ $remedy = SkylakeX ] && echo AVX-512 || echo AVX2) CPU:" \
    "OPENBLAS_CORETYPE=$remedy for this command (set OPENBLAS_CORETYPE yourself to choose another)" >&2
echo "$remedy"
