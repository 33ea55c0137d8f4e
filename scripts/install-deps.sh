#!/usr/bin/env bash
# Installs the Debian 12 packages porta builds and tests against, and only those that are missing,
# so that on a prepared machine (a developer's, CI's) this is a sub-second no-op.
#
#   scripts/install-deps.sh          install what is missing (apt-get, sudo when not root)
#   scripts/install-deps.sh --check  only report what is missing; exit 1 if anything is
#   scripts/install-deps.sh --list   print the package list, one a line
#
# Every dependency comes from Debian's own archive: nothing is downloaded from anywhere else.
set -euo pipefail

readonly packages=(
  # build tools (Ninja: the Makefile's generator, it schedules every target's files on every core;
  # ccache: a second `make test` in the same checkout recompiles only what changed)
  cmake g++ make ninja-build pkg-config ccache
  # runtime libraries: fmt, JSON (model configs, traces), CLI11 (the porta program)
  libfmt-dev nlohmann-json3-dev libcli11-dev
  # tokenizer: Unicode regexes for pre-tokenizers (PCRE2) and Unicode normalization (utf8proc)
  libpcre2-dev libutf8proc-dev
  # backends: oneDNN (cpu), CLBlast + OpenCL with the portable pocl CPU driver (opencl), Eigen
  libdnnl-dev libclblast-dev opencl-headers ocl-icd-opencl-dev pocl-opencl-icd libeigen3-dev
  # expert parallelism across processes: Open MPI (the communicator's MPI implementation, and
  # mpirun for the multi-rank tests)
  openmpi-bin libopenmpi-dev
  # tests
  catch2
)

die() {
  echo "install-deps: error: $*" >&2
  exit 1
}

mode=install
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  --list) printf '%s\n' "${packages[@]}"; exit 0 ;;
  -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (expected --check, --list or nothing)" ;;
esac

command -v dpkg-query >/dev/null 2>&1 \
  || die "dpkg-query not found: porta's setup expects Debian 12 (or a derivative). Install by hand: ${packages[*]}"

missing=()
for package in "${packages[@]}"; do
  # db:Status-Status is exactly "installed" for a fully installed package (not half-configured,
  # not removed with its config files left behind).
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [[ "$status" == installed ]] || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [[ "$mode" == check ]]; then
  echo "install-deps: missing: ${missing[*]}" >&2
  exit 1
fi

sudo_cmd=()
if ((EUID != 0)); then
  command -v sudo >/dev/null 2>&1 \
    || die "not root and sudo is not installed; run as root: apt-get install ${missing[*]}"
  # -n: never prompt (CI has no terminal); fail instead, with the message below.
  sudo_cmd=(sudo -n)
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp "${TMPDIR:-/tmp}/porta-install-deps.XXXXXX.log")
run_apt() {
  if ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >>"$log" 2>&1; then
    echo "install-deps: 'apt-get $*' failed; its last lines ($log):" >&2
    tail -n 25 "$log" >&2
    die "could not install: ${missing[*]}"
  fi
}

echo "install-deps: installing ${missing[*]}"
run_apt update -qq
run_apt install -y -qq --no-install-recommends "${missing[@]}"
rm -f "$log"
echo "install-deps: installed ${#missing[@]} package(s)"
