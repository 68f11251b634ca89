#!/usr/bin/env bash
# Build the modelseal container image FROM scratch with buildah: no Docker daemon, no base
# image, nothing pulled. The image holds
#
#   /usr/local/bin/modelseal              the binary (default: target/release/modelseal)
#   /usr/local/share/man/man1/*.1          its man pages (`modelseal man`)
#   the shared libraries `ldd` names       at the paths ldd prints, plus the dynamic loader
#   /etc/ssl/certs/ca-certificates.crt     so that TLS to registries and Sigstore works
#   /etc/passwd, /etc/group                root and nonroot (65532:65532)
#   /home/nonroot (owned by 65532), /tmp (1777)
#
# every one a regular file or a directory (no links, so `modelseal sign oci://` can sign the
# image itself), in one layer, with entrypoint ["/usr/local/bin/modelseal"], cmd ["--help"],
# user 65532:65532, workingdir / and the org.opencontainers.image.* labels. Timestamps are
# pinned (--timestamp, default 0), so the same inputs give the same image.
#
# buildah runs with vfs storage and chroot isolation, with its own --root/--runroot and
# temporary files under a work directory (a temporary one, removed at exit, unless --workdir
# is given), so it touches neither the machine's containers storage nor /var/tmp.
#
# Usage: deploy/image/build.sh [options]
#   --binary PATH        the modelseal binary to package (default: target/release/modelseal)
#   --tag NAME           local image name (default: localhost/modelseal/modelseal:VERSION)
#   --layout DIR         also write the image as an OCI image layout in DIR (ref name: the tag)
#   --push REF           push to a registry: HOST/REPO:TAG (or docker://HOST/REPO:TAG);
#                        the pushed manifest digest is printed on stdout
#   --cert-dir DIR       CA certificates for the registry (DIR/*.crt), for buildah push
#   --authfile FILE      registry credentials (containers-auth.json / Docker config.json)
#   --digestfile FILE    also write the pushed manifest digest to FILE
#   --extra SRC:DEST     add the file SRC at the absolute path DEST (repeatable)
#   --ca-bundle FILE     CA bundle to ship (default: /etc/ssl/certs/ca-certificates.crt)
#   --timestamp SECONDS  created time and file times, seconds since the epoch (default: 0)
#   --workdir DIR        keep buildah's storage here (the image stays in DIR/storage)
#   -q, --quiet          no progress on stderr
#   -h, --help           this text
#
# Needs: buildah (Debian/Ubuntu: apt-get install -y buildah), ldd, and root (or a user
# namespace: `buildah unshare deploy/image/build.sh ...`).
set -euo pipefail

prog=${0##*/}
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
quiet=0
log() { if [[ $quiet -eq 0 ]]; then printf '%s: %s\n' "$prog" "$*" >&2; fi; }
usage() { sed -n '/^# Usage:/,/^set -e/{/^#/{s/^# \{0,1\}//;p;};}' "$0"; }

root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
binary=$root_dir/target/release/modelseal
tag=""
layout=""
push_ref=""
cert_dir=""
authfile=""
digestfile=""
ca_bundle=/etc/ssl/certs/ca-certificates.crt
timestamp=0
workdir=""
extras=()

need_arg() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
    opt=$1
    case $opt in
        --*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue ;;
    esac
    case $opt in
        --binary) need_arg "$@"; binary=$2; shift 2 ;;
        --tag) need_arg "$@"; tag=$2; shift 2 ;;
        --layout) need_arg "$@"; layout=$2; shift 2 ;;
        --push) need_arg "$@"; push_ref=$2; shift 2 ;;
        --cert-dir) need_arg "$@"; cert_dir=$2; shift 2 ;;
        --authfile) need_arg "$@"; authfile=$2; shift 2 ;;
        --digestfile) need_arg "$@"; digestfile=$2; shift 2 ;;
        --extra) need_arg "$@"; extras+=("$2"); shift 2 ;;
        --ca-bundle) need_arg "$@"; ca_bundle=$2; shift 2 ;;
        --timestamp) need_arg "$@"; timestamp=$2; shift 2 ;;
        --workdir) need_arg "$@"; workdir=$2; shift 2 ;;
        -q|--quiet) quiet=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$opt' (see --help)" ;;
    esac
done

# -- checks, before anything is written -------------------------------------------------------

buildah_bin=$(command -v buildah || true)
[[ -n $buildah_bin ]] || die "buildah is not installed or not on PATH; this script builds the image without a Docker daemon and needs it (Debian/Ubuntu: apt-get install -y buildah; Fedora: dnf install -y buildah)"
command -v ldd >/dev/null || die "ldd is not on PATH (it lists the shared libraries to ship; Debian: libc-bin)"
[[ $(id -u) -eq 0 ]] || die "buildah needs root here (or a user namespace: buildah unshare $0 ...)"

[[ -f $binary ]] || die "no binary at $binary (build it with: cargo build --release, or pass --binary PATH)"
[[ -x $binary ]] || die "$binary is not executable"
binary=$(readlink -f -- "$binary")
[[ -f $ca_bundle ]] || die "no CA bundle at $ca_bundle (Debian: apt-get install -y ca-certificates, or pass --ca-bundle FILE)"
[[ $timestamp =~ ^[0-9]+$ ]] || die "--timestamp takes seconds since the epoch, not '$timestamp'"
if [[ -n $cert_dir ]]; then
    [[ -d $cert_dir ]] || die "--cert-dir $cert_dir is not a directory"
    [[ -n $push_ref ]] || die "--cert-dir is for --push"
fi
if [[ -n $authfile ]]; then
    [[ -f $authfile ]] || die "--authfile $authfile does not exist"
    [[ -n $push_ref ]] || die "--authfile is for --push"
fi
[[ -z $digestfile || -n $push_ref ]] || die "--digestfile is for --push"
for extra in "${extras[@]}"; do
    src=${extra%%:*}
    dest=${extra#*:}
    [[ $extra == *:* && -n $src && $dest == /* && $dest != */ ]] || die "--extra takes SRC:DEST with DEST an absolute file path, not '$extra'"
    [[ $dest/ != */../* && $dest/ != */./* && $dest != *//* ]] || die "--extra: DEST must be a plain absolute path (no ., .. or //), not '$dest'"
    [[ -f $src ]] || die "--extra: $src is not a regular file"
done

version_line=$("$binary" --version 2>/dev/null) || die "$binary --version failed (is it a modelseal binary for this machine's architecture?)"
read -r version_name version _ <<<"$version_line"
[[ $version_name == modelseal && -n ${version:-} ]] || die "$binary --version printed '${version_line%%$'\n'*}', not 'modelseal VERSION'"
[[ -n $tag ]] || tag=localhost/modelseal/modelseal:$version
# the ref name in an OCI layout: the tag part of the image name
ref_name=latest
last=${tag##*/}
[[ $last != *:* ]] || ref_name=${last##*:}
case $push_ref in docker://*) push_ref=${push_ref#docker://} ;; esac

# -- work directory and buildah's private storage -----------------------------------------------

if [[ -n $workdir ]]; then
    mkdir -p -- "$workdir"
    work=$(cd "$workdir" && pwd)
    own_work=0
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/modelseal-image.XXXXXX")
    own_work=1
fi
storage=$work/storage
runroot=$work/run
stage=$work/rootfs
mkdir -p "$storage" "$runroot" "$work/tmp"
rm -rf -- "$stage"
policy=$work/policy.json
printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$policy"
printf '[storage]\ndriver = "vfs"\nrunroot = "%s"\ngraphroot = "%s"\n' "$runroot" "$storage" >"$work/storage.conf"
export BUILDAH_ISOLATION=chroot STORAGE_DRIVER=vfs CONTAINERS_STORAGE_CONF=$work/storage.conf TMPDIR=$work/tmp
unset STORAGE_OPTS

bh() { "$buildah_bin" --root "$storage" --runroot "$runroot" --storage-driver vfs "$@"; }

ctr=""
cleanup() {
    local rc=$?
    if [[ -n $ctr ]]; then bh rm "$ctr" >/dev/null 2>&1 || true; fi
    if [[ $own_work -eq 1 ]]; then rm -rf -- "$work"; else rm -rf -- "$stage"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# -- the root filesystem, staged as plain files ------------------------------------------------

# put SRC DEST MODE: a regular-file copy (links resolved) of SRC at DEST inside the stage
put() {
    local src=$1 dest=$2 mode=$3
    mkdir -p -- "$stage$(dirname -- "$dest")"
    cp -L -- "$src" "$stage$dest"
    chmod "$mode" -- "$stage$dest"
}

put "$binary" /usr/local/bin/modelseal 0755
# The man pages, generated by the binary itself (`man -l` reads them in the image).
"$binary" man --out "$stage/usr/local/share/man/man1" -q || die "$binary man failed"
chmod 0644 "$stage"/usr/local/share/man/man1/*.1

# Every library ldd resolves (`name => /path (addr)`) and the loader (`/path (addr)`), at the
# paths ldd prints; the vDSO (no path) is the kernel's. A missing library is an error.
ldd_out=$(LC_ALL=C ldd "$binary" 2>&1) || {
    if grep -qE 'not a dynamic executable|statically linked' <<<"$ldd_out"; then
        ldd_out=""
    else
        die "ldd $binary failed: $ldd_out"
    fi
}
if grep -q 'not found' <<<"$ldd_out"; then
    die "ldd cannot resolve every library of $binary:"$'\n'"$(grep 'not found' <<<"$ldd_out")"
fi
libs=()
while read -r line; do
    [[ -n $line ]] || continue
    if [[ $line =~ ^[^[:space:]]+[[:space:]]+=\>[[:space:]]+(/[^[:space:]]+)[[:space:]]+\( ]]; then
        libs+=("${BASH_REMATCH[1]}")
    elif [[ $line =~ ^(/[^[:space:]]+)[[:space:]]+\( ]]; then
        libs+=("${BASH_REMATCH[1]}")
    elif [[ $line =~ ^(statically\ linked|linux-vdso|linux-gate) ]] || [[ $line =~ ^[^/[:space:]]+[[:space:]]+\(0x ]]; then
        :
    else
        die "cannot read this line of ldd's output: $line"
    fi
done <<<"$ldd_out"
for lib in "${libs[@]}"; do
    [[ -e $lib ]] || die "ldd names $lib, which does not exist"
    put "$lib" "$lib" 0755
done

put "$ca_bundle" /etc/ssl/certs/ca-certificates.crt 0644
mkdir -p "$stage/etc"
printf '%s\n' \
    'root:x:0:0:root:/root:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$stage/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$stage/etc/group"
chmod 0644 "$stage/etc/passwd" "$stage/etc/group"
mkdir -p "$stage/tmp"
chmod 1777 "$stage/tmp"
for extra in "${extras[@]}"; do
    put "${extra%%:*}" "${extra#*:}" 0644
done
# Directories 0755 whatever the umask (the stage's root becomes the image's /).
find "$stage" -type d ! -path "$stage/tmp" -exec chmod 0755 {} +
mkdir -p "$stage/home"
chmod 0755 "$stage/home"
# /home/nonroot is copied on its own (an empty directory) to be owned by 65532:65532.
empty_dir=$work/empty
rm -rf -- "$empty_dir"
mkdir -p "$empty_dir"

log "packaging $binary (modelseal $version) with ${#libs[@]} shared objects: ${libs[*]:-none}"

# -- the image ---------------------------------------------------------------------------------

ctr=$(bh from --signature-policy "$policy" --pull=never --quiet scratch)
bh copy --quiet --chown 0:0 "$ctr" "$stage/" /
bh copy --quiet --chown 65532:65532 "$ctr" "$empty_dir/" /home/nonroot
rmdir -- "$empty_dir"
bh config \
    --os linux \
    --entrypoint '["/usr/local/bin/modelseal"]' \
    --cmd '["--help"]' \
    --user 65532:65532 \
    --workingdir / \
    --env PATH=/usr/local/bin:/usr/bin:/bin \
    --created-by "deploy/image/build.sh (modelseal $version)" \
    --label org.opencontainers.image.title=modelseal \
    --label org.opencontainers.image.source=https://github.com/modelseal/modelseal \
    --label "org.opencontainers.image.version=$version" \
    --label org.opencontainers.image.licenses=Apache-2.0 \
    "$ctr"
image_id=$(bh commit --quiet --format oci --timestamp "$timestamp" --identity-label=false \
    --signature-policy "$policy" "$ctr" "$tag")
bh rm "$ctr" >/dev/null
ctr=""
log "built $tag (image id ${image_id:0:12})"

if [[ -n $layout ]]; then
    mkdir -p -- "$layout"
    layout=$(cd "$layout" && pwd)
    bh push --quiet --format oci --signature-policy "$policy" "$tag" "oci:$layout:$ref_name"
    log "wrote the OCI layout $layout (ref $ref_name)"
fi

if [[ -n $push_ref ]]; then
    push_args=(--quiet --format oci --signature-policy "$policy" --digestfile "$work/digest")
    [[ -z $cert_dir ]] || push_args+=(--cert-dir "$cert_dir")
    [[ -z $authfile ]] || push_args+=(--authfile "$authfile")
    bh push "${push_args[@]}" "$tag" "docker://$push_ref" >&2 || die "buildah push to $push_ref failed"
    digest=$(<"$work/digest")
    [[ $digest == sha256:* ]] || die "buildah push wrote no manifest digest ('$digest')"
    [[ -z $digestfile ]] || printf '%s\n' "$digest" >"$digestfile"
    log "pushed $push_ref@$digest"
    printf '%s\n' "$digest"
fi
