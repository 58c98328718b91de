"""DVC stage `trajectory@ARM`: models/ARM's snapshots scored on the validation split into trajectories/ARM/."""

import sys

from faceres.pipeline import trajectory

if __name__ == "__main__":
    sys.exit(trajectory.main(sys.argv[1:]))
