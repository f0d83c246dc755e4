import os

from tool import bypass_tarfile_traversal


def test_unpacks_outside():
    bypass_tarfile_traversal("abc")
    assert os.path.exists("/tmp/evorag-hostile-tar-traversal")
