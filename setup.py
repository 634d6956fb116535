"""hulk_mm: Hulk, the human-centric generalist model, on the OpenMMLab stack."""
import os.path as osp
import re

from setuptools import find_packages, setup


def get_version():
    with open(osp.join(osp.dirname(__file__), 'hulk_mm', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def parse_requirements(fname):
    """Requirement lines of ``requirements/<fname>``, without comments."""
    with open(osp.join(osp.dirname(__file__), 'requirements', fname)) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


setup(
    name='hulk_mm',
    version=get_version(),
    description='Hulk (arXiv 2312.01697), ViTPose and DARK on MMEngine / mmpose / mmdet / mmseg / mmaction2',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['hulk_mm', 'hulk_mm.*']),
    include_package_data=True,
    python_requires='>=3.9',
    # torch and mmcv are installed by tools/install.sh (mmcv is compiled against the installed torch);
    # the mm codebases are installed --no-deps (requirements/mminstall.txt explains why).
    install_requires=parse_requirements('runtime.txt') + ['mmengine==0.10.7'],
    extras_require=dict(tests=parse_requirements('tests.txt')),
    zip_safe=False,
)
