"""Project the frames of an anime episode into a StyleGAN2 latent space, and walk between them.

    python projector_video.py project --network=network-snapshot.pkl --video=ep003.mp4 --out=proj [--every 2]
    python projector_video.py interpolate --network=network-snapshot.pkl --projection=proj --out=walk
    python projector_video.py figure --network=network-snapshot.pkl --projection=proj --out=figure.png

Only the command group is assembled here; the commands live in manganime_ext.cli.projector_video.
"""

from manganime_ext.cli.projector_video import cli

if __name__ == "__main__":
    cli()
