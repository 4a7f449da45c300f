"""Start-up of the `fastcf` command: wall time and peak RSS of `fastcf --help`, `--version` and `info`, in fresh processes.

    python bench/bench_cli_start.py                       # this checkout, 9 runs of each command
    python bench/bench_cli_start.py --before /tmp/base    # and a second checkout (e.g. `git archive REV fastcf | tar -x -C /tmp/base`),
                                                          # run alternately with this one, so both see the same machine load

Target (issue 22): `fastcf --help` under 0.5 s and 150 MB. Each run is `python -c 'from fastcf.cli import main; main()'`
with the checkout first on PYTHONPATH, as the console script runs it; the medians are printed, and the peak RSS of each
child comes from `resource.getrusage(RUSAGE_CHILDREN)` via `os.wait4`.
"""
import argparse, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMPTY = tempfile.mkdtemp()
SCRIPT = "import sys; from fastcf.cli import main; sys.argv[0] = 'fastcf'; sys.exit(main())"


def run_once(checkout:Path, argv:list) -> tuple:
    "(seconds, peak RSS in MB) of one `fastcf ARGV` with `checkout` first on the path"
    env = {**os.environ, 'PYTHONPATH': str(checkout)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, '-c', SCRIPT, *argv], env=env, cwd=EMPTY, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 2): raise RuntimeError(f"fastcf {' '.join(argv)} exited {proc.returncode}")
    return seconds, usage.ru_maxrss / 1024


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--before', type=Path, help='a second checkout (a folder holding fastcf/) to run alternately with this one')
    p.add_argument('--runs', type=int, default=9)
    args = p.parse_args()
    model = Path(tempfile.mkdtemp()) / 'model.fcf'
    subprocess.run([sys.executable, '-c', f"from fastcf.testing import random_export; random_export(2000, 300, seed=0).save({str(model)!r})"],
                   env={**os.environ, 'PYTHONPATH': str(ROOT)}, check=True)
    checkouts = {'after': ROOT} | ({'before': args.before} if args.before else {})
    commands = {'--help': ['--help'], '--version': ['--version'], 'info': ['info', str(model)]}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; median of {args.runs} runs, alternating checkouts")
    for name, argv in commands.items():
        times = {c: [] for c in checkouts}
        for _ in range(args.runs):
            for c, path in checkouts.items(): times[c].append(run_once(path, argv))
        for c in checkouts:
            secs, mbs = zip(*times[c])
            print(f"  fastcf {name:<10} {c:<7} {statistics.median(secs):6.2f} s  {statistics.median(mbs):6.0f} MB peak RSS")


if __name__ == '__main__': main()
