"""Turn a training checkpoint into a weights file: ``python tools/model_converters/publish_model.py IN OUT``.

OUT holds the model state dict and JSON-safe meta and loads with ``torch.load(weights_only=True)``; optimizer,
scheduler and message-hub state are dropped. IN is loaded without unpickling anything but MMEngine's own types.
"""
import argparse

from hulk_mm.engine.publish import publish_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('in_file', help='training checkpoint, e.g. work_dirs/x/iter_1000.pth')
    parser.add_argument('out_file', help='weights file to write')
    args = parser.parse_args(argv)
    sha = publish_model(args.in_file, args.out_file)
    print(f'{args.out_file}  sha256 {sha}')


if __name__ == '__main__':
    main()
