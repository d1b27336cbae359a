# Shared setup for scripts/demo and scripts/test: system packages, then the virtualenv.
# Sourced, not run. Idempotent: does nothing that is already done.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${ROSTER_VENV:-$ROOT/.venv}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

ensure_system_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

python_packages_for_build() {
  # python-ldap compiles against libldap; it needs the headers of the Python that builds it.
  local pkgs=(gcc libldap2-dev libsasl2-dev slapd ldap-utils)
  local inc
  inc="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  [ -f "$inc/Python.h" ] || pkgs+=(python3-dev)
  python3 -c 'import ensurepip' 2>/dev/null || pkgs+=(python3-venv)
  echo "${pkgs[@]}"
}

ensure_venv() {
  local extras="$1"
  # shellcheck disable=SC2046
  ensure_system_packages $(python_packages_for_build)
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.roster-installed-$extras"
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e "$ROOT[$extras]"
    touch "$stamp"
  fi
}

ensure_postgres() {
  # The store tests also run against PostgreSQL on 127.0.0.1:5432 (trust auth, database "test").
  if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then return 0; fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 1; done
  fi
  echo "PostgreSQL is not reachable on 127.0.0.1:5432; its tests will skip (or fail under CI=true)" >&2
}

stop_system_directory_services() {
  # Debian may start its packaged slapd or samba on install; Roster's tests run their own instances,
  # and Samba needs the fixed ports 389/636/3268/3269 on loopback.
  for svc in slapd samba-ad-dc samba smbd nmbd winbind; do
    if command -v service >/dev/null && service "$svc" status >/dev/null 2>&1; then
      as_root service "$svc" stop >/dev/null 2>&1 || true
    fi
  done
}
