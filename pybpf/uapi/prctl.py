"""prctl(2) options (include/uapi/linux/prctl.h)."""

PR_SET_PDEATHSIG = 1      # arg2: the signal this process gets when its parent thread exits
