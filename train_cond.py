"""Manga-conditioned next-frame prediction on a pretrained StyleGAN2-ADA generator.

    python train_cond.py --data=paired.zip --network=network-snapshot.pkl --cond=warpstyle --outdir=runs
    python train_cond.py eval --data=paired.zip --network=paper=runs/00000-.../network-snapshot-000064.pkl \
        --network=warpstyle=runs/00001-.../network-snapshot-000064.pkl --out=eval
    python train_cond.py rollout --network=runs/00001-.../network-snapshot-000064.pkl --video=ep003.mp4 \
        --page-function=tags/ep003.json --manga=manga --out=rollout

Only the command group is assembled here; the commands live in manganime_ext.cli.train_cond.
"""

from manganime_ext.cli.train_cond import cli

if __name__ == "__main__":
    cli()
