# docker run -m and docker update through kiln: the limit is the guest
# cgroup's, seen from inside the container, and docker update reaches it
# (containerd's runc shim calls `kiln update -r -` with the resources on
# stdin). The daemon, image and step harness are t_docker.sh's, which
# run.sh sources first; only these steps run here.

dk_res_memory() {
	drun dkr --rm -m 64m "$DM_IMAGE" cat /sys/fs/cgroup/memory.max
	dm_expect_rc 0 && dm_out_is 67108864
}

dk_res_update() {
	dk rm -f up >/dev/null 2>&1
	drun dkr -d --name up -m 64m "$DM_IMAGE" sleep 1000
	dm_expect_rc 0 || return 1
	dm_until 60 '[ "$(dk_state up Running)" = true ]'
	# docker's swap default is twice the memory: 128m, room for 96m
	drun dk update --memory 96m up
	if ! dm_expect_rc 0; then
		dk rm -f up >/dev/null 2>&1
		return 1
	fi
	drun dk exec up cat /sys/fs/cgroup/memory.max
	dk rm -f up >/dev/null 2>&1
	dm_expect_rc 0 && dm_out_is 100663296
}

test_docker_res_limits() {
	DK_STEPS="image res_memory res_update" test_docker_runs_kiln
}
