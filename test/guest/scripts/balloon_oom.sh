#!/bin/sh
# virtio-balloon deflate-on-oom: with most of RAM in the balloon, take 300
# MiB. The host says what to expect with balloon_expect=ok|oom on the
# kernel command line: ok when the balloon may deflate, oom when not.
. /tests/balloon_lib.sh
expect=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^balloon_expect=//p')
balloon_settle 90
mem_report
rc=0
/tools/memhog 300 || rc=$?
echo "memhog rc=$rc"
mem_report
case "$expect" in
ok) [ "$rc" -eq 0 ] ;;
oom) [ "$rc" -ne 0 ] ;;
*) echo "balloon_expect not given"; exit 1 ;;
esac
