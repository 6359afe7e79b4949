#!/usr/bin/env bash
# Validates contrib/k8s/*.yaml against Kubernetes' own JSON schemas (kubernetes-validate,
# from PyPI, installed into a scratch folder), and checks that the configuration they carry
# (and the container image's) passes `ringproxy -t`. No cluster needed.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools=${TMPDIR:-/tmp}/ringproxy-k8s-tools
if [ ! -x "$tools/bin/kubernetes-validate" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$tools" kubernetes-validate
fi
PYTHONPATH="$tools" python3 "$tools/bin/kubernetes-validate" --strict --kubernetes-version 1.30.0 contrib/k8s/*.yaml
bin=${RINGPROXY:-target/release/ringproxy}
[ -x "$bin" ] || bin=target/debug/ringproxy
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
text = open("contrib/k8s/configmap.yaml").read()
# The ringproxy.conf block: the lines indented under `ringproxy.conf: |`.
body = text.split("ringproxy.conf: |\n", 1)[1]
conf = "\n".join(l[4:] for l in body.splitlines())
open(f"{work}/configmap.conf", "w").write(conf.replace("/run/ringproxy", work) + "\n")
open(f"{work}/image.conf", "w").write(open("contrib/container/ringproxy.conf").read().replace("/run/ringproxy", work))
PY
for c in "$work/configmap.conf" "$work/image.conf"; do
  # Member names resolve only inside the cluster: check with literal addresses.
  sed -i 's#app-0\.app\.default\.svc\.cluster\.local#127.0.0.1#; s#app-1\.app\.default\.svc\.cluster\.local#127.0.0.2#' "$c"
  "$bin" -t -f "$c" >/dev/null 2>&1 || { "$bin" -t -f "$c"; exit 1; }
done
echo "contrib/k8s: manifests valid; configurations pass -t"
