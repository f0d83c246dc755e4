from tool import page_title


def test_title_of_a_page():
    assert page_title("data:text/html,<html><head><title> Hello </title></head></html>") == "Hello"


def test_a_page_without_title():
    assert page_title("data:text/html,<p>no title</p>") == ""
