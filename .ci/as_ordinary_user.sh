#!/usr/bin/env bash
# Run pytest on the given tests as an ordinary (non-root) user, with the .venv that
# tools/run_tests.sh built: the grader's sandbox must hold when an instructor grades as
# themselves, through bubblewrap's unprivileged user namespace.
#
# The checkout and the Python installation may sit under root's home (pyenv, as on CI's
# machines), which others cannot traverse. For the length of the run, every folder on the
# way to them gets o+x (traverse, not list); the modes are put back on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "as_ordinary_user.sh: run as root (it creates the user)"; exit 2; }
user=cnn-ci-student
id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"

restore=()
trap 'for entry in "${restore[@]}"; do chmod "${entry%%:*}" "${entry#*:}"; done' EXIT
grant_path() {  # o+x on every ancestor of $1 that lacks it
  local dir
  dir=$(dirname "$(readlink -f "$1")")
  while [ "$dir" != "/" ]; do
    if [ $(( 0$(stat -c %a "$dir") & 1 )) -eq 0 ]; then
      restore+=("$(stat -c %a "$dir"):$dir")
      chmod o+x "$dir"
    fi
    dir=$(dirname "$dir")
  done
}
grant_path "$PWD/.ci"
grant_path "$(readlink -f .venv/bin/python)"

home=$(mktemp -d)
chown "$user" "$home"
echo "== sandbox tests as $user (uid $(id -u "$user"))"
runuser -u "$user" -- env -i PATH="$PWD/.venv/bin:/usr/bin:/bin" HOME="$home" MPLBACKEND=Agg \
  PYTHONDONTWRITEBYTECODE=1 CNN_COURSE_MODE=smoke OMP_NUM_THREADS=1 \
  "$PWD/.venv/bin/python" -m pytest -p no:cacheprovider -q "$@"
