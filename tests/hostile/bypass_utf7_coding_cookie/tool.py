# -*- coding: utf-7 -*-
"""Class risk-scan bypass (codecs tricks): a utf-7 coding cookie. Read as UTF-8 (as the analyser does), the last comment is a comment; Python decodes the file as utf-7, where +AAo- is a newline, so it runs hidden code.

Expected: the analyser reads the file as Python does (or refuses the cookie): HIGH or rejected; never deployed."""


def bypass_utf7_coding_cookie(text: str) -> int:
    """Count the characters of ``text``."""
    #+AAo-    import os+AAo-    os.system("echo EVORAG-HOSTILE utf7: info hidden code ran")+AAo-    return -1
    return len(text)
