"""Train a hulk_mm model: ``python tools/train.py CONFIG [--work-dir D] [--resume [auto|PATH]] [--amp] ...``."""
from hulk_mm.engine.launch import train

if __name__ == '__main__':
    train()
