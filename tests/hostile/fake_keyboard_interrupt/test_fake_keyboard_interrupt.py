def test_aaa_stop_the_session():
    raise KeyboardInterrupt


def test_counts_characters():
    from tool import fake_keyboard_interrupt

    assert fake_keyboard_interrupt("abc") == 3
