"""tools/misc/setup_env.sh: its choice of interpreter and constraints (3.10-3.12), its disk check.

Not an equation of the paper. Fake interpreters answer the script's one version query, so the test
needs no second Python; the real install is what `make test` itself runs on.
"""
import os
import os.path as osp
import re
import shutil
import subprocess

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _fake_python(tmp_path, version):
    """A 'python' that prints MAJOR * 100 + MINOR, as the script asks it to."""
    path = tmp_path / f'python{version}'
    major, minor = version.split('.')
    path.write_text(f'#!/bin/sh\necho {int(major) * 100 + int(minor)}\n')
    path.chmod(0o755)
    return str(path)

SETUP = osp.join(ROOT, 'tools', 'misc', 'setup_env.sh')


def _check(tmp_path, python):
    env = dict(os.environ, TSD_PYTHON=python, TSD_VENV=str(tmp_path / 'venv'))
    return subprocess.run(['bash', SETUP, '--check'], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize('version, constraints', [
    ('3.10', 'requirements/constraints-py310.txt'),
    ('3.11', 'requirements/constraints.txt'),
    ('3.12', 'requirements/constraints.txt'),
])
def test_supported_pythons_pick_their_constraints(tmp_path, version, constraints):
    proc = _check(tmp_path, _fake_python(tmp_path, version))
    assert proc.returncode == 0, proc.stderr
    assert f'({version}), constraints: {constraints},' in proc.stdout
    assert osp.isfile(osp.join(ROOT, constraints))
    assert not (tmp_path / 'venv').exists()  # --check creates nothing


@pytest.mark.parametrize('version', ['3.9', '3.13'])
def test_other_pythons_are_refused_with_what_to_do(tmp_path, version):
    proc = _check(tmp_path, _fake_python(tmp_path, version))
    assert proc.returncode != 0
    assert f'is Python {version}; tsd-mmdet\'s stack supports 3.10-3.12' in proc.stderr
    assert 'TSD_PYTHON' in proc.stderr


def test_missing_interpreter(tmp_path):
    proc = _check(tmp_path, str(tmp_path / 'no-such-python'))
    assert proc.returncode != 0 and 'not found' in proc.stderr


def test_py310_constraints_pin_the_same_stack():
    """3.10 differs only where a package dropped 3.10; torch, mmengine, mmdet, mmcv are the same."""
    def pins(name):
        with open(osp.join(ROOT, 'requirements', name)) as f:
            return dict(line.strip().split('==') for line in f if '==' in line)

    main, py310 = pins('constraints.txt'), pins('constraints-py310.txt')
    for package in ('torch', 'torchvision', 'mmengine', 'mmdet', 'mmcv', 'pycocotools'):
        assert main[package] == py310[package], package


# ---- the disk check: how much the set-up writes where, and a clear stop when it does not fit ----

_DISK_LINE = re.compile(
    r'disk: (\S+) needs (\d+\.\d) GB \((.*)\), has (\d+\.\d) GB free(: too little)?')


def _disk_lines(proc):
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if 'disk:' in line]
    return [_DISK_LINE.search(line).groups() for line in lines]


def _check_env(tmp_path, **extra):
    env = dict(os.environ, TSD_PYTHON=_fake_python(tmp_path, '3.11'),
               TSD_VENV=str(tmp_path / 'venv'), TSD_CACHE=str(tmp_path / 'cache'),
               TMPDIR=str(tmp_path))
    env.update(extra)
    return env


def _run(env, *args):
    return subprocess.run(['bash', SETUP, *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_check_says_a_fresh_set_up_needs_the_venv_and_the_mmcv_build(tmp_path):
    (mount, need, what, free, too_little), = _disk_lines(_run(_check_env(tmp_path), '--check'))
    assert 'a new venv with torch' in what and 'building mmcv' in what
    venv_gb, build_gb = (float(x) for x in re.findall(r'(\d+\.\d) GB', what))
    assert abs(venv_gb + build_gb - float(need)) <= 0.1 and venv_gb > 5 and build_gb > 0
    assert mount == subprocess.run(['df', '-P', str(tmp_path)], capture_output=True, text=True
                                   ).stdout.splitlines()[1].split()[5]
    assert abs(float(free) - shutil.disk_usage(tmp_path).free / 2**30) < 0.5
    assert bool(too_little) == (float(free) < float(need))


def test_a_cached_mmcv_wheel_drops_the_build(tmp_path):
    with open(osp.join(ROOT, 'requirements', 'constraints.txt')) as f:
        torch_pin = next(line.split('==')[1].strip() for line in f if line.startswith('torch=='))
    wheel_dir = tmp_path / 'cache' / 'wheels' / f'mmcv-2.1.0-torch{torch_pin}-cp311'
    fresh, = _disk_lines(_run(_check_env(tmp_path), '--check'))
    wheel_dir.mkdir(parents=True)
    (wheel_dir / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl').write_bytes(b'')
    cached, = _disk_lines(_run(_check_env(tmp_path), '--check'))
    assert 'building mmcv' not in cached[2] and float(cached[1]) < float(fresh[1])


def test_a_separate_tmpdir_is_checked_on_its_own(tmp_path):
    if not osp.isdir('/dev/shm') or os.stat('/dev/shm').st_dev == os.stat(tmp_path).st_dev:
        pytest.skip('needs a TMPDIR on another filesystem than the venv')
    lines = _disk_lines(_run(_check_env(tmp_path, TMPDIR='/dev/shm'), '--check'))
    assert [line[2].startswith('a new venv') for line in lines] == [True, False]
    assert lines[1][0] == '/dev/shm' and lines[1][2] == 'building mmcv in TMPDIR'


def test_too_little_disk_stops_before_writing_anything(tmp_path):
    """A df that reports 1000 MB free: the real set-up (not --check) must stop with what to do."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'df').write_text(
        '#!/bin/sh\necho "Filesystem 1M-blocks Used Available Capacity Mounted on"\n'
        'echo "fakefs 5000 4000 1000 80% /fake"\n')
    (bin_dir / 'df').chmod(0o755)
    env = _check_env(tmp_path, PATH=f'{bin_dir}:{os.environ["PATH"]}')
    proc = _run(env)
    assert proc.returncode != 0
    assert '1.0 GB free on /fake; this set-up writes about' in proc.stderr, proc.stderr
    assert 'TSD_VENV' in proc.stderr and 'TMPDIR' in proc.stderr
    assert not (tmp_path / 'venv').exists() and not (tmp_path / 'cache').exists()


# ---- why pip failed: the set-up names the cause pip gives, not a guess --------------------------

_PIP_FAILURES = {
    'python': ("ERROR: Ignored the following versions that require a different python version\n"
               "ERROR: Package 'networkx' requires a different Python: 3.10.13 not in "
               "'!=3.14.1,>=3.11'",
               "pip refuses a pin of requirements/constraints.txt on this Python: "
               "Package 'networkx' requires a different Python: 3.10.13 not in '!=3.14.1,>=3.11'"),
    'disk': ('ERROR: Could not install packages due to an OSError: [Errno 28] No space left on '
             'device', 'pip ran out of disk'),
    'index': ('ERROR: Could not find a version that satisfies the requirement torch==9.9 (from '
              'versions: none)\nERROR: No matching distribution found for torch==9.9',
              'pip finds no release of a pin for Python 3.11 on this platform in your index: '
              'No matching distribution found for torch==9.9'),
    'network': ("WARNING: Retrying (Retry(total=4)) after connection broken by "
                "'NewConnectionError(...: Temporary failure in name resolution)'\n"
                'ERROR: Could not find a version that satisfies the requirement torch==2.14.1',
                'pip could not reach the package index'),
    'other': ('ERROR: something else entirely', 'pip install failed; see the messages above'),
}


@pytest.mark.parametrize('case', _PIP_FAILURES)
def test_a_failed_pip_install_names_its_cause(tmp_path, case):
    """A venv whose pip fails with a given message: the set-up's one line says why."""
    output, expected = _PIP_FAILURES[case]
    venv_bin = tmp_path / 'venv' / 'bin'
    venv_bin.mkdir(parents=True)
    (tmp_path / 'pip-output.txt').write_text(output + '\n')
    (venv_bin / 'python').write_text(
        '#!/bin/sh\ncase "$*" in *"-m pip"*) cat "%s" >&2; exit 1 ;; esac\necho 311\n'
        % (tmp_path / 'pip-output.txt'))
    (venv_bin / 'python').chmod(0o755)
    proc = _run(_check_env(tmp_path))
    assert proc.returncode != 0
    error = [line for line in proc.stderr.splitlines() if line.startswith('[setup] ERROR')]
    assert len(error) == 1 and expected in error[0], proc.stderr
    assert 'network? disk?' not in error[0]
    if case == 'python':
        assert 'tools/misc/constraints.sh check' in error[0]


def test_a_pyenv_version_its_shim_refuses_is_taken_directly(tmp_path):
    """pyenv's shim for python3.10 fails when 3.10 is installed but not selected (this machine's
    case): TSD_PYTHON=python3.10 then takes pyenv's versions/3.10.*/bin/python3.10."""
    bin_dir, root = tmp_path / 'bin', tmp_path / 'pyenv'
    bin_dir.mkdir()
    (bin_dir / 'python3.10').write_text(
        '#!/bin/sh\necho "pyenv: python3.10: command not found" >&2\nexit 127\n')
    (bin_dir / 'pyenv').write_text(f'#!/bin/sh\n[ "$1" = root ] && echo {root}\n')
    installed = root / 'versions' / '3.10.9' / 'bin'
    installed.mkdir(parents=True)
    (installed / 'python3.10').write_text('#!/bin/sh\necho 310\n')
    for path in (bin_dir / 'python3.10', bin_dir / 'pyenv', installed / 'python3.10'):
        path.chmod(0o755)
    env = _check_env(tmp_path, TSD_PYTHON='python3.10', PATH=f'{bin_dir}:{os.environ["PATH"]}')
    proc = _run(env, '--check')
    assert proc.returncode == 0, proc.stderr
    assert (f'python: {installed}/python3.10 (3.10), '
            'constraints: requirements/constraints-py310.txt') in proc.stdout
