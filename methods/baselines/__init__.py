"""The baselines the paper compares against, one file each: a supervised trunk and a random one."""
