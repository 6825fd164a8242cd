#!/bin/bash
# Builds clttt's OpenCL programs for GPUs this machine does not have, with the
# exact options the library would use there (bench/kernel_options), and
# reports what each kernel costs the GPU: registers, spills, local memory.
#
#   bench/gpu_offline_build.sh [--vendor nvidia|amd|intel|all] [--candidates] [--quick]
#                              [--kernel-options PATH] [--jobs N] [--keep DIR]
#
# NVIDIA: clang's nvptx64-nvidia-nvcl target with libclc's nvidiacl library,
# then ptxas (CUDA toolkit) for $PTXAS_ARCH (default sm_90, the H200 of
# bench/RESULTS.md's device machine): registers per work-item, spill bytes,
# stack, shared (local) memory, and the largest work-group those registers
# allow, checked against each kernel's reqd_work_group_size. Without ptxas
# only the PTX is produced. AMD: the amdgcn-amd-amdhsa target for $AMD_GPU
# (default gfx1030), whose assembly states VGPRs, scratch, LDS and
# occupancy. Intel: the spir64 front end only (no offline back end here):
# the source compiles with Intel's options.
#
# NVIDIA's and AMD's drivers compile OpenCL C with their own front ends (both
# LLVM-based), so counts can differ from theirs by a few registers; a
# program that fails here or overflows local memory would fail there too.
# Needs clang-15, llvm-15 and libclc-15 (Debian packages); not a build or
# test dependency. Exit status 1 when any program fails to build, needs more
# local memory than the GPU has, or fixes a work-group its registers cannot
# hold (NVIDIA).
set -u

vendors="all" candidates="" quick="" jobs=2 keep=""
kernel_options="./bench/kernel_options"
while [ $# -gt 0 ]; do
  case "$1" in
    --vendor) vendors="$2"; shift 2 ;;
    --candidates) candidates="--candidates"; shift ;;
    --quick) quick="--quick"; shift ;;
    --kernel-options) kernel_options="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu_offline_build: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
  esac
done
[ "$vendors" = all ] && vendors="nvidia amd intel"
for v in $vendors; do
  case "$v" in nvidia | amd | intel) ;; *) echo "gpu_offline_build: --vendor '$v': nvidia, amd, intel or all" >&2; exit 2 ;; esac
done
case "$jobs" in '' | *[!0-9]* | 0) echo "gpu_offline_build: --jobs '$jobs': a whole number from 1" >&2; exit 2 ;; esac

here=$(cd "$(dirname "$0")" && pwd)
cl_dir="$here/../cl"
CLANG=${CLANG:-clang-15} LLVM_LINK=${LLVM_LINK:-llvm-link-15} OPT=${OPT:-opt-15} LLC=${LLC:-llc-15}
LLVM_DIS=${LLVM_DIS:-llvm-dis-15}
LIBCLC=${LIBCLC:-/usr/lib/clc}
PTXAS=${PTXAS:-$(command -v ptxas || echo /usr/local/cuda/bin/ptxas)}
PTXAS_ARCH=${PTXAS_ARCH:-sm_90}
AMD_GPU=${AMD_GPU:-gfx1030}
for tool in "$CLANG" "$LLVM_LINK" "$OPT" "$LLC" "$LLVM_DIS"; do
  command -v "$tool" > /dev/null || { echo "gpu_offline_build: skipped: $tool not found (apt-get install clang-15 llvm-15 libclc-15)" >&2; exit 0; }
done
[ -x "$kernel_options" ] || { echo "gpu_offline_build: $kernel_options not found: run from the build directory after make, or give --kernel-options" >&2; exit 2; }
[ -x "$PTXAS" ] || PTXAS=""

work=${keep:-$(mktemp -d)}
mkdir -p "$work"
[ -z "$keep" ] && trap 'rm -rf "$work"' EXIT

# One program for one vendor: writes $out.tsv (a line per kernel) or $out.fail.
build_one() {
  local vendor=$1 index=$2 file=$3 label=$4 options=$5
  local out="$work/$vendor.$index" triple cpu library
  case "$vendor" in
    nvidia) triple=nvptx64-nvidia-nvcl; cpu="-target-cpu sm_80 -target-feature +ptx72"; library="$LIBCLC/nvptx64--nvidiacl.bc" ;;
    amd) triple=amdgcn-amd-amdhsa; cpu="-target-cpu $AMD_GPU"; library="$LIBCLC/amdgcn--amdhsa.bc" ;;
    intel) triple=spir64; cpu=""; library="" ;;
  esac
  # shellcheck disable=SC2086 # the options are separate words on purpose
  if ! "$CLANG" -cc1 -triple $triple $cpu -emit-llvm-bc -O3 -finclude-default-header -fdeclare-opencl-builtins \
      $options -o "$out.bc" "$cl_dir/$file" 2> "$out.err"; then
    printf '%s\t%s\t%s\t(front end)\tFAIL\t%s\n' "$vendor" "$file" "$label" "$(grep -m1 error "$out.err")" > "$out.fail"
    return
  fi
  if [ "$vendor" = intel ]; then
    printf '%s\t%s\t%s\t(all)\tcompiled\t\n' "$vendor" "$file" "$label" > "$out.tsv"
    return
  fi
  if ! { "$LLVM_LINK" "$out.bc" "$library" -only-needed -o "$out.linked.bc" && "$OPT" -O3 "$out.linked.bc" -o "$out.opt.bc"; } 2>> "$out.err"; then
    printf '%s\t%s\t%s\t(link)\tFAIL\t%s\n' "$vendor" "$file" "$label" "$(tail -1 "$out.err")" > "$out.fail"
    return
  fi
  if [ "$vendor" = amd ]; then
    if ! "$LLC" -mcpu="$AMD_GPU" "$out.opt.bc" -o "$out.s" 2>> "$out.err"; then
      printf '%s\t%s\t%s\t(llc)\tFAIL\t%s\n' "$vendor" "$file" "$label" "$(tail -1 "$out.err")" > "$out.fail"
      return
    fi
    # LDS past the 64 KiB of a work-group cannot launch.
    awk -v v="$vendor" -v f="$file" -v l="$label" '
      /^[A-Za-z_][A-Za-z0-9_]*:/ { name = substr($1, 1, index($1, ":") - 1) }
      /; NumVgprs:/ { vgprs = $3 } /; ScratchSize:/ { scratch = $3 } /; LDSByteSize:/ { lds = $3 }
      /; Occupancy:/ { verdict = lds > 65536 ? "FAIL" : "ok"
                       printf "%s\t%s\t%s\t%s\t%s\tVGPRs %d, scratch %d bytes, LDS %d bytes, %d waves per SIMD\n",
                              v, f, l, name, verdict, vgprs, scratch, lds, $3 }' "$out.s" > "$out.tsv"
    return
  fi
  if ! "$LLC" -mcpu=sm_80 -mattr=+ptx72 "$out.opt.bc" -o "$out.ptx" 2>> "$out.err"; then
    printf '%s\t%s\t%s\t(llc)\tFAIL\t%s\n' "$vendor" "$file" "$label" "$(tail -1 "$out.err")" > "$out.fail"
    return
  fi
  if grep -q '^\.extern \.func' "$out.ptx"; then
    printf '%s\t%s\t%s\t(link)\tFAIL\tunresolved %s\n' "$vendor" "$file" "$label" \
      "$(grep -m1 '^\.extern \.func' "$out.ptx")" > "$out.fail"
    return
  fi
  if [ -z "$PTXAS" ]; then
    printf '%s\t%s\t%s\t(all)\tPTX only\tno ptxas\n' "$vendor" "$file" "$label" > "$out.tsv"
    return
  fi
  if ! "$PTXAS" -arch="$PTXAS_ARCH" -v "$out.ptx" -o "$out.cubin" 2> "$out.ptxas"; then
    printf '%s\t%s\t%s\t(ptxas)\tFAIL\t%s\n' "$vendor" "$file" "$label" "$(grep -m1 -i error "$out.ptxas")" > "$out.fail"
    return
  fi
  # Work-group sizes fixed in the source (reqd_work_group_size), per kernel:
  # the NVPTX back end does not carry them into the PTX, the IR has them.
  "$LLVM_DIS" "$out.opt.bc" -o - 2>> "$out.err" | awk '
    /^define .*spir_kernel/ && /!reqd_work_group_size/ {
      match($0, /@[A-Za-z0-9_]+\(/); name = substr($0, RSTART + 1, RLENGTH - 2)
      match($0, /!reqd_work_group_size ![0-9]+/); node = substr($0, RSTART + 22, RLENGTH - 22); want[node] = name }
    /^![0-9]+ = !\{i32 [0-9]+, i32 [0-9]+, i32 [0-9]+\}/ {
      node = substr($1, 1); if (node in want) { gsub(/[{},]/, " "); print want[node], $5 * $7 * $9 } }' > "$out.reqntid"
  # A block's registers come in 256-register units per warp out of 64 K;
  # shared memory past 48 KiB needs an opt-in OpenCL cannot give.
  awk -v v="$vendor" -v f="$file" -v l="$label" -v reqfile="$out.reqntid" '
    BEGIN { while ((getline line < reqfile) > 0) { split(line, part, " "); req[part[1]] = part[2] } }
    /Compiling entry function/ { match($0, /function .[A-Za-z0-9_]+/); name = substr($0, RSTART + 10, RLENGTH - 10) }
    /bytes stack frame/ { stack = $1; spills = $5 + $9 }
    /Used [0-9]+ registers/ {
      regs = $5; smem = 0
      if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH) + 0
      per_warp = int((regs * 32 + 255) / 256) * 256
      most = int(65536 / per_warp) * 32; if (most > 1024) most = 1024
      verdict = smem > 49152 || (name in req && req[name] > most) ? "FAIL" : "ok"
      fixed = name in req ? sprintf(", work-group %d fixed", req[name]) : ""
      printf "%s\t%s\t%s\t%s\t%s\t%d registers, %d bytes spilled, %d bytes stack, %d bytes shared, up to %d work-items%s\n",
             v, f, l, name, verdict, regs, spills, stack, smem, most, fixed }' "$out.ptxas" > "$out.tsv"
}

lines="$work/programs.tsv"
status=0
for vendor in $vendors; do
  # shellcheck disable=SC2086
  if ! "$kernel_options" --vendor "$vendor" $candidates $quick > "$lines.$vendor"; then
    echo "gpu_offline_build: $kernel_options failed for $vendor" >&2
    exit 1
  fi
  total=$(wc -l < "$lines.$vendor")
  echo "gpu_offline_build: $vendor: $total programs ($(date -u '+%Y-%m-%d %H:%M UTC'))" >&2
  index=0
  while IFS=$'\t' read -r file label options; do
    index=$((index + 1))
    build_one "$vendor" "$index" "$file" "$label" "$options" &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    [ $((index % 20)) -eq 0 ] && echo "gpu_offline_build: $vendor: $index / $total" >&2
  done < "$lines.$vendor"
  wait
  for i in $(seq 1 "$index"); do
    [ -f "$work/$vendor.$i.fail" ] && cat "$work/$vendor.$i.fail"
    [ -f "$work/$vendor.$i.tsv" ] && cat "$work/$vendor.$i.tsv"
  done > "$work/$vendor.results"
  cat "$work/$vendor.results"
  failed=$(awk -F'\t' '$5 == "FAIL"' "$work/$vendor.results" | wc -l)
  echo "gpu_offline_build: $vendor: $index programs, $failed failures" >&2
  [ "$failed" -gt 0 ] && status=1
done
exit $status
