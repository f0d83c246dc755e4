def test_counts_characters():
    from tool import device_test_file

    assert device_test_file("abc") == 3
