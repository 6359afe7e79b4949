#!/usr/bin/env bash
# Builds the Debian package (target/debian/ringproxy_VERSION_ARCH.deb) with dpkg-deb, then
# checks what is in it. No cargo-deb: dpkg-deb ships with every Debian system.
#
#   bash contrib/deb/build.sh            build (release) and check
#   dpkg -i target/debian/ringproxy_*.deb
#
# What it installs: /usr/sbin/ringproxy, /usr/bin/ringload, their man pages, the systemd
# unit, /etc/ringproxy/ringproxy.conf (a conffile: kept on upgrade), the logrotate file,
# the README; postinst creates the `ringproxy` system user.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
cargo build --release --locked --workspace
root=target/debian/root
rm -rf "$root"
install -D -m 0755 target/release/ringproxy "$root/usr/sbin/ringproxy"
install -D -m 0755 target/release/ringload "$root/usr/bin/ringload"
strip "$root/usr/sbin/ringproxy" "$root/usr/bin/ringload"
mkdir -p "$root/usr/share/man/man8" "$root/usr/share/man/man1"
target/release/ringproxy man | gzip -9n >"$root/usr/share/man/man8/ringproxy.8.gz"
target/release/ringload man | gzip -9n >"$root/usr/share/man/man1/ringload.1.gz"
install -D -m 0644 contrib/ringproxy.service "$root/lib/systemd/system/ringproxy.service"
install -D -m 0644 contrib/ringproxy.conf "$root/etc/ringproxy/ringproxy.conf"
install -D -m 0644 contrib/ringproxy.logrotate "$root/etc/logrotate.d/ringproxy"
install -D -m 0644 README.md "$root/usr/share/doc/ringproxy/README.md"
printf 'ringproxy\nLicense: Apache-2.0\n' >"$root/usr/share/doc/ringproxy/copyright"
mkdir -p "$root/DEBIAN"
installed=$(du -sk "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: ringproxy
Version: $version
Architecture: $arch
Maintainer: ringproxy developers <ringproxy@localhost>
Installed-Size: $installed
Depends: libc6, adduser
Section: httpd
Priority: optional
Description: thread-per-core io_uring reverse proxy that reads Apache configuration
 ringproxy is an HTTP/1.1 reverse proxy and load balancer that runs Apache httpd's
 mod_proxy_balancer configuration (BalancerMember, stickysession, balancer-manager,
 mod_status, mod_ssl, mod_proxy_ajp), one io_uring event loop per core. ringload, the
 bundled load generator, plans capacity.
CONTROL
echo /etc/ringproxy/ringproxy.conf >"$root/DEBIAN/conffiles"
echo /etc/logrotate.d/ringproxy >>"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd ringproxy >/dev/null; then
        adduser --system --group --no-create-home --home /nonexistent ringproxy >/dev/null
    fi
    install -d -o ringproxy -g adm -m 2750 /var/log/ringproxy
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null || true
    fi
fi
exit 0
POSTINST
cat >"$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
fi
exit 0
POSTRM
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"
deb="target/debian/ringproxy_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
# The check: every file it must install, and the metadata dpkg reads.
contents=$(dpkg-deb -c "$deb")
for f in ./usr/sbin/ringproxy ./usr/bin/ringload ./usr/share/man/man8/ringproxy.8.gz \
    ./usr/share/man/man1/ringload.1.gz ./lib/systemd/system/ringproxy.service \
    ./etc/ringproxy/ringproxy.conf ./etc/logrotate.d/ringproxy ./usr/share/doc/ringproxy/README.md; do
    grep -q " $f\$" <<<"$contents" || { echo "package lacks $f" >&2; exit 1; }
done
[ "$(dpkg-deb -f "$deb" Package)" = ringproxy ] || { echo "bad control file" >&2; exit 1; }
dpkg-deb -I "$deb" conffiles | grep -qx /etc/ringproxy/ringproxy.conf
# The packaged example configuration must pass the packaged binary's -t (its log
# directories aside, which postinst makes).
sed 's#/var/log/ringproxy#/tmp#; s#/run/ringproxy#/tmp#' "$root/etc/ringproxy/ringproxy.conf" >target/debian/check.conf
"$root/usr/sbin/ringproxy" -t -f target/debian/check.conf >/dev/null 2>&1 || {
    echo "the packaged ringproxy.conf does not pass -t" >&2
    "$root/usr/sbin/ringproxy" -t -f target/debian/check.conf >&2 || true
    exit 1
}
zcat "$root/usr/share/man/man8/ringproxy.8.gz" | grep -q '^.TH ringproxy 8'
echo "built and checked $deb"
