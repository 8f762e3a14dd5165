#!/usr/bin/env bash
# Builds fio 3.33 from Debian's source package, and the uvio ioengine against that same tree:
# fio's engine ABI is internal (struct thread_data, struct io_u and the option tables change
# with its configure results), so the engine is only loaded by the fio it was built with.
#
#   bash fio/build.sh    ->  target/fio/bin/fio and target/fio/uvio.so
#
#   target/fio/bin/fio --thread --ioengine=external:target/fio/uvio.so \
#       --filename=0000\:00\:05.0 --name=job --rw=randread --bs=4k --iodepth=8 --size=16m
#
# Needs root on Debian 12 (apt-get source with a deb-src entry, build tools); reuses what an
# earlier run left under target/fio.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/target/fio
src=$out/src
version=3.33
debian_version=3.33-3
mkdir -p "$out/bin" "$src"

fetch_source() {
    if ! (cd "$src" && apt-get source --download-only "fio=$debian_version") >"$src/fetch.log" 2>&1; then
        # Debian's package archive, as the machine's deb entries name it, for sources too.
        echo "fio/build.sh: adding a deb-src entry for bookworm and retrying" >&2
        cat >/etc/apt/sources.list.d/uvio-fio-src.sources <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        apt-get update >"$src/apt-update.log" 2>&1
        (cd "$src" && apt-get source --download-only "fio=$debian_version") >"$src/fetch.log" 2>&1
    fi
    rm -rf "$src/fio-$version"
    (cd "$src" && dpkg-source -x "fio_$debian_version.dsc" "fio-$version") >"$src/extract.log" 2>&1
}

tree=$src/fio-$version
if [ ! -x "$tree/fio" ]; then
    for tool in gcc make dpkg-source; do
        command -v "$tool" >/dev/null || {
            echo "fio/build.sh: $tool is missing: apt-get install build-essential dpkg-dev" >&2
            exit 1
        }
    done
    [ -f "$tree/configure" ] || fetch_source
    echo "fio/build.sh: building fio $version in $tree" >&2
    (cd "$tree" && ./configure --disable-native --prefix=/usr && make -j"$(nproc)" fio) \
        >"$src/build.log" 2>&1 || {
        tail -30 "$src/build.log" >&2
        exit 1
    }
fi
cp "$tree/fio" "$out/bin/fio"

# libuvio.a in a target directory of its own, so that a cargo already running (the test that
# calls this script) does not hold its lock.
CARGO_TARGET_DIR=$out/cargo "${CARGO:-cargo}" build --release -p libuvio \
    --manifest-path "$root/Cargo.toml" >&2
gcc -std=gnu11 -O2 -g -Wall -Werror -fPIC -shared -D_GNU_SOURCE \
    -include "$tree/config-host.h" -I "$tree" -I "$root/libuvio/include" \
    -o "$out/uvio.so" "$root/fio/uvio_engine.c" "$out/cargo/release/libuvio.a" \
    -static-libgcc -Wl,--exclude-libs,ALL -lpthread -ldl -lm
echo "fio/build.sh: $out/bin/fio and $out/uvio.so" >&2
