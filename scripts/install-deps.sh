#!/bin/sh
# Install the Debian packages cryo needs to build and test, only if missing.
set -e
PKGS="gcc make binutils libc6-dev libzstd-dev liblz4-dev python3 bash coreutils procps clang libclang-rt-14-dev libcap2-bin passwd"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
