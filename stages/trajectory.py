"""DVC stage `trajectory@ARM`: models/ARM's snapshots scored on the validation split into trajectories/ARM/."""

import sys

from faceres.pipeline import trajectory, stop_with_parent

if __name__ == "__main__":
    stop_with_parent()
    sys.exit(trajectory.main(sys.argv[1:]))
