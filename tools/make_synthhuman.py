"""Generate SynthHuman: ``python tools/make_synthhuman.py --out DIR --num-train N --num-val M --seed S
[--tasks pose detection parsing] [--workers K]``. The logic lives in ``hulk_mm.datasets.synthetic.generate``."""
import argparse
import sys

from hulk_mm.datasets.synthetic import TASKS, generate, resolve_tasks
from hulk_mm.datasets.synthetic.contact_sheet import make_contact_sheet


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='output folder (e.g. data/synthhuman)')
    parser.add_argument('--num-train', type=int, required=True, help='number of training scenes')
    parser.add_argument('--num-val', type=int, required=True, help='number of validation scenes')
    parser.add_argument('--seed', type=int, default=0, help='random seed (same seed -> same dataset)')
    parser.add_argument('--tasks', nargs='+', metavar='TASK',
                        help=f'tasks to write (default: all of {" ".join(TASKS)})')
    parser.add_argument('--workers', type=int, default=1, help='rendering processes')
    parser.add_argument('--no-contact-sheet', action='store_true',
                        help='skip OUT/contact_sheet.jpg (val scenes drawn with their annotations; needs pose)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        tasks = resolve_tasks(args.tasks)
    except ValueError as err:
        sys.exit(f'make_synthhuman.py: error: {err}')
    manifest = generate(args.out, args.num_train, args.num_val, args.seed, tasks=tasks, workers=args.workers)
    print(f'SynthHuman {manifest["version"]} (seed {manifest["seed"]}) written to {args.out}: '
          f'{manifest["counts"]["train"]} train / {manifest["counts"]["val"]} val scenes, '
          f'tasks: {", ".join(manifest["tasks"])}')
    if not args.no_contact_sheet and 'pose' in manifest['tasks'] and args.num_val > 0:
        print(f'contact sheet: {make_contact_sheet(args.out)}')


if __name__ == '__main__':
    main()
