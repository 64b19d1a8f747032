# shellcheck shell=bash
# shellcheck disable=SC2034 # settings are used by the other libraries cluster.sh sources
# Container images without a registry: there is none here, and containerd is configured so that it can never
# reach one (containerd.sh). The images are built locally as docker-archive tarballs and imported.
#
#   python:3.11-slim      A STAND-IN for Docker Hub's python:3.11-slim: Debian bookworm minbase (debootstrap)
#                         plus Debian's python3 (3.11.2) and nodejs (18.x). The kubelet normalizes
#                         "python:3.11-slim" to docker.io/library/python:3.11-slim, which is the name the
#                         import produces, so the runner's default image works with imagePullPolicy
#                         IfNotPresent (or Never). Unlike the real image it has no pip, Python lives in
#                         /usr/bin, not /usr/local/bin, and it has Node.js, so that the javascript language
#                         runs here: the real image has no node, and gkexec refuses javascript on it
#                         (`gkexec doctor` says which languages an image runs).
#   localhost/pause:3.10  The pod sandbox image: test/localcluster/pause, a static 1.4 MB Go program.
#   localhost/gkexec-datascience:local
#                         OPTIONAL, built and imported only by `cluster.sh image datascience`: the same base
#                         plus Debian's numpy, pandas and matplotlib, for figures (Options.Image).

PYTHON_IMAGE=python:3.11-slim
PYTHON_IMAGE_CRI=docker.io/library/python:3.11-slim
PAUSE_IMAGE=localhost/pause:3.10
DATASCIENCE_IMAGE=localhost/gkexec-datascience:local
IMAGE_DIR=$CACHE/image

# Bump when the image recipe changes so cached tarballs are rebuilt.
IMAGE_RECIPE=2
# What each Debian-based image holds beyond minbase.
PYTHON_PACKAGES=python3,nodejs
DATASCIENCE_PACKAGES=$PYTHON_PACKAGES,python3-numpy,python3-pandas,python3-matplotlib

# mkimage ROOTFS REF OUT.tar CMD_JSON [USER]: writes a single-layer docker-archive (the format of `docker save`:
# manifest.json, <sha>.json config, <diffid>/layer.tar). Plain tar and sha256sum; no umoci/skopeo/docker needed.
mkimage() {
	local rootfs=$1 ref=$2 out=$3 cmd=$4 user=${5:-} work diffid cfg
	work=$(mktemp -d "$IMAGE_DIR/mkimage.XXXXXX")
	tar --numeric-owner --sort=name -C "$rootfs" -cf "$work/layer.tar" .
	diffid=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
	mkdir "$work/$diffid"
	mv "$work/layer.tar" "$work/$diffid/layer.tar"
	cat >"$work/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",
 "config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","LANG=C.UTF-8"],"Cmd":$cmd,"User":"$user"},
 "rootfs":{"type":"layers","diff_ids":["sha256:$diffid"]}}
EOF
	cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1)
	mv "$work/config.json" "$work/$cfg.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' "$cfg" "$ref" "$diffid" >"$work/manifest.json"
	tar -C "$work" -cf "$out.tmp" manifest.json "$cfg.json" "$diffid"
	mv "$out.tmp" "$out"
	rm -rf "$work"
}

# build_debian_image NAME REF PACKAGES: $IMAGE_DIR/NAME.tar, Debian minbase plus PACKAGES (comma-separated).
build_debian_image() {
	local name=$1 ref=$2 packages=$3 rootfs=$IMAGE_DIR/$1-rootfs t0
	rm -rf "$rootfs"
	t0=$(date +%s)
	# The only network use of `up`: Debian's package mirror (an apt registry), on a cold cache only.
	debootstrap --variant=minbase --include="$packages" "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR"
	echo "debootstrap took $(($(date +%s) - t0))s"
	# Trim what a container never needs (python3 alone: 261 MB -> 125 MB).
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
		"$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log
	# The real image has `python`; scripts written for it may call that name.
	ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
	mkimage "$rootfs" "$ref" "$IMAGE_DIR/$name.tar" '["python3"]'
	rm -rf "$rootfs"
	du -h "$IMAGE_DIR/$name.tar"
}

build_pause_image() {
	local rootfs=$IMAGE_DIR/pause-rootfs
	rm -rf "$rootfs"
	mkdir -p "$rootfs"
	go_env
	(cd "$LOCALCLUSTER_DIR/pause" && go build -trimpath -ldflags "-s -w" -o "$rootfs/pause" .)
	mkimage "$rootfs" "$PAUSE_IMAGE" "$IMAGE_DIR/pause.tar" '["/pause"]' 65535:65535
	rm -rf "$rootfs"
}

stage_image() {
	mkdir -p "$IMAGE_DIR"
	local pause_key python_key="python $DEBIAN_SUITE minbase+$PYTHON_PACKAGES recipe $IMAGE_RECIPE"
	pause_key="pause $(sha256sum "$LOCALCLUSTER_DIR/pause/main.go" | cut -c1-16) recipe $IMAGE_RECIPE"
	if stamp_ok python-image "$python_key" && [ -f "$IMAGE_DIR/python.tar" ]; then
		echo "cached: $python_key"
	else
		build_debian_image python "$PYTHON_IMAGE" "$PYTHON_PACKAGES"
		stamp_write python-image "$python_key"
	fi
	if stamp_ok pause-image "$pause_key" && [ -f "$IMAGE_DIR/pause.tar" ]; then
		echo "cached: $pause_key"
	else
		build_pause_image
		stamp_write pause-image "$pause_key"
	fi
	ls -l "$IMAGE_DIR"/*.tar
}

# stage_datascience_image: the optional image, built on demand (cluster.sh image datascience).
stage_datascience_image() {
	mkdir -p "$IMAGE_DIR"
	local key="datascience $DEBIAN_SUITE minbase+$DATASCIENCE_PACKAGES recipe $IMAGE_RECIPE"
	if stamp_ok datascience-image "$key" && [ -f "$IMAGE_DIR/datascience.tar" ]; then
		echo "cached: $key"
	else
		build_debian_image datascience "$DATASCIENCE_IMAGE" "$DATASCIENCE_PACKAGES"
		stamp_write datascience-image "$key"
	fi
}
