"""seaport's policy pack (pulumi-policy): rules in rules.py, offline runner in offline.py."""
