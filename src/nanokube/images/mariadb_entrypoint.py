"""Entrypoint for the mariadb/mysql catalogue entries, behaving like the official image's entrypoint.

On first start it initialises the data directory (/var/lib/mysql, i.e. the mounted volume) with
mariadb-install-db, sets the root password from MARIADB_ROOT_PASSWORD / MYSQL_ROOT_PASSWORD (or allows an
empty one / generates a random one), creates MARIADB_DATABASE and MARIADB_USER if asked, then execs mariadbd
listening on 3306 on every pod address. Stdlib only; passwords go to the server over stdin, never argv or logs.

MariaDB's compiled-in defaults are sized for a dedicated database host (a 128 MB InnoDB buffer pool, 128 MB
Aria and MyISAM caches, a 16 MB redo log buffer): about 100 MB of RSS at idle. A pod on a one-machine tool gets
a small-footprint profile instead (SMALL_PROFILE, about 55 MB at idle), written to an option file that the
server reads first. Everything the user configures wins over it, as with the official image: option files in
/etc/mysql/conf.d or /etc/mysql/mariadb.conf.d when a volume (e.g. a ConfigMap) is mounted there, then the
container's args (``--innodb-buffer-pool-size=1G``). NANOKUBE_MARIADB_SMALL=0 in the container's env turns the
profile off (MariaDB's own defaults).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time

if __package__:
    from nanokube.images.mounts import host_path
else:  # run as a file with -I -S (see the catalogue entry): the standard library and the files beside it only
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from mounts import host_path

DATADIR = "/var/lib/mysql"
CONFIG_DIRS = ("/etc/mysql/mariadb.conf.d", "/etc/mysql/conf.d")  # where the official image reads *.cnf
SMALL_PROFILE = {
    "performance_schema": "OFF",
    "innodb_buffer_pool_size": "16M",  # pages are touched as data is read: idle RSS is the same as with 8M
    "innodb_log_buffer_size": "2M",  # the minimum; the 16M default is allocated and touched up front
    "aria_pagecache_buffer_size": "2M",  # the system tables (mysql.*) are Aria
    "key_buffer_size": "1M",  # MyISAM
    "query_cache_size": "0",
    "table_open_cache": "64",
    "table_definition_cache": "400",
    "thread_cache_size": "4",
    "max_connections": "64",
    "host_cache_size": "0",  # --skip-name-resolve (always given) makes it useless
}


def env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value is not None:
            return value
    return None


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ident(value: str) -> str:
    return "`" + value.replace("`", "``") + "`"


def log(msg: str) -> None:
    print(f"[Entrypoint] {msg}", file=sys.stderr, flush=True)


def program(name: str, *fallbacks: str) -> str:
    for candidate in (name, *fallbacks):
        found = shutil.which(candidate, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin")
        if found:
            return found
    raise SystemExit(f"[Entrypoint] {name} is not installed on this machine (apt-get install mariadb-server)")


def is_mount_point(path: str) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == path for line in f)
    except OSError:
        return False


def user_config_dirs() -> list[str]:
    """The official image's conf.d directories, where the pod mounts a volume (not the host's own files)."""
    dirs = []
    for path in CONFIG_DIRS:
        real = host_path(path)
        mounted = real != path if os.environ.get("NANOKUBE_NETWORK") == "loopback" else is_mount_point(path)
        if mounted and os.path.isdir(real):
            dirs.append(real)
    return dirs


def write_options(run_dir: str) -> str:
    """The option file the server reads (--defaults-file): the small profile, then the user's conf.d."""
    lines = ["# written by nanokube's mariadb entrypoint; user settings below and in args win", "[mariadbd]"]
    if os.environ.get("NANOKUBE_MARIADB_SMALL", "1").lower() not in ("0", "false", "no", "off"):
        lines += [f"{name} = {value}" for name, value in SMALL_PROFILE.items()]
    lines += [f"!includedir {d}" for d in user_config_dirs()]
    path = os.path.join(run_dir, "nanokube.cnf")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, 0o644)  # mariadbd ignores a world-writable option file
    return path


INIT_DIR = ".nanokube-init"  # the first start initialises here, inside the volume (same filesystem)
INIT_DONE = ".complete"
# What an interrupted mariadb-install-db of an earlier version left in the data dir itself (no mysql/ yet):
# nothing can use it, and it makes every later install fail ("File ./ib_logfile0 was not found").
INIT_DEBRIS_PREFIXES = ("ibdata", "ib_logfile", "ib_buffer_pool", "ibtmp", "undo0", "aria_log", "mysql_upgrade_info",
                        "ddl_recovery", "multi-master.info")


def initialised(datadir: str) -> bool:
    """Whether datadir holds a complete database, finishing or discarding an interrupted first start.

    A first start initialises into DATADIR/.nanokube-init and marks it complete only once the users are set
    up and the temporary server has stopped cleanly; then the files move into DATADIR, mysql/ last (its
    presence is what says "initialised"). Interrupted before the mark: start over; after it: finish the move.
    """
    staging = os.path.join(datadir, INIT_DIR)
    if os.path.isdir(staging):
        if os.path.exists(os.path.join(staging, INIT_DONE)):
            move_into_place(staging, datadir)
            return True
        log("Removing an initialisation that was interrupted")
        shutil.rmtree(staging)
    if os.path.isdir(os.path.join(datadir, "mysql")):
        return True
    for name in os.listdir(datadir):
        if name.startswith(INIT_DEBRIS_PREFIXES):
            log(f"Removing {name} left by an interrupted initialisation")
            path = os.path.join(datadir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
    return False


def move_into_place(staging: str, datadir: str) -> None:
    entries = sorted(os.listdir(staging), key=lambda name: name == "mysql")  # mysql/ last
    for name in entries:
        if name != INIT_DONE:
            os.replace(os.path.join(staging, name), os.path.join(datadir, name))
    os.unlink(os.path.join(staging, INIT_DONE))
    os.rmdir(staging)
    fsync_dir(datadir)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def initialise(datadir: str, socket_path: str, options: str, user_args: list[str]) -> None:
    """First start: initialise in a staging directory, then move it into place (see `initialised`)."""
    staging = os.path.join(datadir, INIT_DIR)
    os.makedirs(staging)
    _initialise(staging, socket_path, options, user_args)
    subprocess.run(["sync", "-f", staging], check=False)  # the files are durable before the mark says so
    with open(os.path.join(staging, INIT_DONE), "w") as f:
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(staging)
    move_into_place(staging, datadir)


def _initialise(datadir: str, socket_path: str, options: str, user_args: list[str]) -> None:
    root_password = env("MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD")
    allow_empty = env("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD", "MYSQL_ALLOW_EMPTY_PASSWORD")
    random_pw = env("MARIADB_RANDOM_ROOT_PASSWORD", "MYSQL_RANDOM_ROOT_PASSWORD")
    if root_password is None and not allow_empty and not random_pw:
        raise SystemExit("[Entrypoint] Database is uninitialized and password option is not specified\n"
                         "\tYou need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ROOT_PASSWORD_HASH, "
                         "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD")
    if random_pw and root_password is None:
        root_password = secrets.token_urlsafe(24)
        log(f"GENERATED ROOT PASSWORD: {root_password}")
    log("Initializing database files")
    subprocess.run([program("mariadb-install-db", "mysql_install_db"), "--no-defaults", f"--datadir={datadir}",
                    *user_args, "--auth-root-authentication-method=normal", "--skip-test-db",
                    "--skip-name-resolve"], check=True, stdout=subprocess.DEVNULL)
    log("Starting temporary server")
    temp = subprocess.Popen([program("mariadbd", "mysqld"), f"--defaults-file={options}", f"--datadir={datadir}",
                             f"--socket={socket_path}", "--skip-networking", *user_args])
    client = program("mariadb", "mysql")
    deadline = time.monotonic() + 60
    while True:
        probe = subprocess.run([client, "--no-defaults", f"--socket={socket_path}", "-uroot", "-e", "SELECT 1"],
                               capture_output=True)
        if probe.returncode == 0:
            break
        if temp.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("[Entrypoint] temporary server did not start")
        time.sleep(0.1)
    pw = root_password or ""
    sql = ["SET @@SESSION.SQL_LOG_BIN=0;",
           "DELETE FROM mysql.user WHERE user NOT IN ('mysql.sys', 'mariadb.sys', 'root') OR host NOT IN ('localhost');",
           f"ALTER USER 'root'@'localhost' IDENTIFIED BY {quote(pw)};",
           f"CREATE USER 'root'@'%' IDENTIFIED BY {quote(pw)};",
           "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"]
    database = env("MARIADB_DATABASE", "MYSQL_DATABASE")
    if database:
        sql.append(f"CREATE DATABASE IF NOT EXISTS {ident(database)};")
    user, user_pw = env("MARIADB_USER", "MYSQL_USER"), env("MARIADB_PASSWORD", "MYSQL_PASSWORD")
    if user and user_pw is not None:
        sql.append(f"CREATE USER {quote(user)}@'%' IDENTIFIED BY {quote(user_pw)};")
        if database:
            sql.append(f"GRANT ALL ON {ident(database)}.* TO {quote(user)}@'%';")
    sql.append("FLUSH PRIVILEGES;")
    done = subprocess.run([client, "--no-defaults", f"--socket={socket_path}", "-uroot"],
                          input="\n".join(sql).encode(), capture_output=True)
    if done.returncode != 0:
        temp.kill()
        detail = done.stderr.decode(errors="replace")
        raise SystemExit("[Entrypoint] setting up users failed: " + (detail.replace(pw, "***") if pw else detail))
    log("Stopping temporary server")
    temp.terminate()
    if temp.wait(60) != 0:
        raise SystemExit(f"[Entrypoint] temporary server stopped with {temp.returncode}")
    log("MariaDB init process done. Ready for start up.")


def main() -> None:
    args = sys.argv[1:] or ["mariadbd"]
    if args[0].startswith("-"):  # args: ["--innodb-buffer-pool-size=1G"] are options for mariadbd (as upstream)
        args = ["mariadbd", *args]
    if os.path.basename(args[0]) not in ("mariadbd", "mysqld"):
        os.execvp(args[0], args)
    datadir = host_path(DATADIR)
    os.makedirs(datadir, exist_ok=True)
    run_dir = host_path("/run/mysqld") if os.environ.get("NANOKUBE_NETWORK") != "loopback" else \
        os.path.join(os.environ.get("NANOKUBE_POD_DIR") or datadir, "run")
    os.makedirs(run_dir, exist_ok=True)
    socket_path = os.path.join(run_dir, "mysqld.sock")
    user_args = ["--user=root"] if os.geteuid() == 0 else []
    options = write_options(run_dir)
    if not initialised(datadir):
        initialise(datadir, socket_path, options, user_args)
    bind = os.environ.get("NANOKUBE_BIND") or "0.0.0.0"
    argv = [program("mariadbd", "mysqld"), f"--defaults-file={options}", f"--datadir={datadir}",
            f"--socket={socket_path}", f"--bind-address={bind}", "--port=3306", "--skip-name-resolve",
            f"--pid-file={os.path.join(run_dir, 'mysqld.pid')}", *user_args, *args[1:]]
    log("starting " + " ".join(argv[1:]))
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
