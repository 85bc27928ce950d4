# etc/local.mk - install layout: systemd unit, man pages, installed configuration.
