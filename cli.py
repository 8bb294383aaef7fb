"""Run the command line from a checkout without installing: `python cli.py stylize photo.jpg`,
`accelerate launch cli.py diffusion train ...`. Installed, the `stylenorm` command (and
`python -m stylenorm`) runs the same stylenorm.cli.main."""

from stylenorm.cli import main

if __name__ == "__main__":
    main()
