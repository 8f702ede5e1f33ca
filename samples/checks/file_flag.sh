#!/bin/sh
# vrrp_script / MISC_CHECK: take a node out for maintenance with a flag file.
#   vrrp_script maint {
#       script "/etc/dpvsd/checks/file_flag.sh /etc/dpvsd/maintenance"
#       interval 2
#       weight -50        # lower the priority so the peer takes over
#       fall 1
#       rise 2
#   }
# Exit 0 while the flag file is absent, 1 while it exists.
set -u
flag=${1:?flag file}
[ -e "$flag" ] && exit 1
exit 0
