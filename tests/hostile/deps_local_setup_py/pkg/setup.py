import pathlib
pathlib.Path('/tmp/evorag-hostile-pwned-setup-py').write_text('ran')
from setuptools import setup
setup(name='evorag-hostile-local', version='1.0')
