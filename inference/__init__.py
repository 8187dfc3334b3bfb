"""Using trained models on whole videos: frame I/O, SR and VFI runners, and scoring (see tools/)."""
