#!/usr/bin/env bash
# Here (CPU machine, repo root): the vLLM 0.26.0 bundle for the GPU machine from the LOCKED wheels
# (benchmarks/gpu/vllm_wheels.lock: pins + sha256). Same layout as /work/shared/gpu's bundle: a
# folder DEST/partN (part 1 FIRST_BYTES, the others PART_BYTES) with a piece of the xz'd site folder and stage.sh; on the device,
# one call per part, back to back; the last one unpacks to /root/vllm-site.
# usage: bash benchmarks/gpu/vllm_bundle.sh [DEST=.gpu-vllm] [PART_BYTES=58000000] [FIRST_BYTES=48000000]
#   (PY=python, WORK=dir). Part 1 is smaller: the call that stages it also carries the ~9 MB of
#   benchmark wheels (device_env.sh installs them once per machine), the later calls do not.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:-.gpu-vllm}; PART=${2:-58000000}; FIRST=${3:-48000000}; PY=${PY:-python3}; WORK=${WORK:-$(mktemp -d)}
PLAT=""; for t in manylinux_2_28 manylinux_2_27 manylinux_2_26 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1 manylinux_2_31 manylinux_2_34 manylinux_2_35; do PLAT="$PLAT --platform ${t}_x86_64"; done
mkdir -p "$WORK/wheels"
"$PY" -m pip download -q --no-deps --only-binary=:all: --require-hashes -r benchmarks/gpu/vllm_wheels.lock \
  --python-version 3.12 --implementation cp $PLAT -d "$WORK/wheels"
rm -rf "$WORK/vllm-site"
"$PY" -m pip install -q --no-deps --no-index --no-compile --only-binary=:all: --python-version 3.12 \
  --implementation cp $PLAT --target "$WORK/vllm-site" "$WORK"/wheels/*.whl
S="$WORK/vllm-site"
# never loaded by offline Qwen2.5-VL on Hopper (FA3 path): FA2, MoE kernels, the Rust front end, other Pythons' builds
rm -rf "$S/bin" "$S/vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so" "$S/vllm/_moe_C_stable_libtorch.abi3.so" "$S/vllm/vllm-rs" \
  "$S"/vllm/third_party/deep_gemm/_C.cpython-3{10,11,13,14}-x86_64-linux-gnu.so
tar -C "$WORK" -cf - vllm-site | xz -T0 -3 > "$WORK/site.tar.xz"  # -3: minutes on 2 cores, ~10 % larger than -9
rm -rf "$DEST" "$WORK"/piece.*; mkdir -p "$DEST"
head -c "$FIRST" "$WORK/site.tar.xz" > "$WORK/piece.0"
tail -c +$((FIRST + 1)) "$WORK/site.tar.xz" | split -b "$PART" -d -a 1 --numeric-suffixes=1 - "$WORK/piece."
n=$(ls "$WORK"/piece.* | wc -l); i=0
for p in "$WORK"/piece.*; do
  i=$((i+1)); mkdir -p "$DEST/part$i"; cp "$p" "$DEST/part$i/site.tar.xz.$i"
  cat > "$DEST/part$i/stage.sh" <<STAGE
#!/usr/bin/env bash
# device: keep piece $i of $n under /root/vllm-stage; once all $n are there, unpack to /root/vllm-site
set -e
mkdir -p /root/vllm-stage && cp "\$(dirname "\$0")"/site.tar.xz.$i /root/vllm-stage/
have=\$(ls /root/vllm-stage/site.tar.xz.* | wc -l)
if [ "\$have" -ge $n ] && [ ! -d /root/vllm-site/vllm ]; then
  cat \$(ls /root/vllm-stage/site.tar.xz.* | sort -V) | xz -dc -T0 | tar -C /root -xf -
fi
[ -d /root/vllm-site/vllm ] && echo "vllm ready in /root/vllm-site" || echo "staged \$have of $n pieces"
STAGE
done
if [ -d .git ]; then grep -qxF "/$DEST/" .git/info/exclude 2>/dev/null || echo "/$DEST/" >> .git/info/exclude; fi
du -sh "$DEST"/part*
