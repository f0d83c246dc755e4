import unittest


class Checks(unittest.TestCase):
    @unittest.skip("later")
    def test_counts_characters(self):
        from tool import fake_unittest_skip

        self.assertEqual(fake_unittest_skip("abc"), 3)


def test_counts_characters():
    raise unittest.SkipTest("not today")
