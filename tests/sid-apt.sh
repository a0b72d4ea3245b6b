# Sourced by tests/setup-crun.sh and tests/setup-containerd.sh: fetch .deb
# files from Debian sid without touching the host's apt state. The host
# never installs them; the setup scripts unpack them into private prefixes.
#
# A private apt state (lists and cache under $CACHE/apt-sid) with a `deb`
# entry for sid built from the host's own mirror URI, the same way
# tests/setup-host.sh finds CRIU's source. apt checks the index against
# Debian's archive key; sid_deb then checks the file against the index
# and, when the caller pins one, against the pinned SHA256.

SID_APT_DIR="$CACHE/apt-sid"

sid_apt() {
	apt-get -o "Dir::Etc::SourceList=$SID_APT_DIR/sid.sources" -o "Dir::Etc::SourceParts=$SID_APT_DIR/none" \
		-o "Dir::State::Lists=$SID_APT_DIR/lists" -o "Dir::Cache=$SID_APT_DIR/cache" "$@"
}

sid_apt_ready=""
sid_apt_update() {
	[ -z "$sid_apt_ready" ] || return 0
	local uri
	uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
	mkdir -p "$SID_APT_DIR/lists/partial" "$SID_APT_DIR/cache"
	cat >"$SID_APT_DIR/sid.sources" <<-EOF
		Types: deb
		URIs: $uri
		Suites: sid
		Components: main
		Architectures: amd64
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	sid_apt update -qq
	sid_apt_ready=1
}

# sid_deb PKG[=VERSION] [SHA256]: prints the path of the cached .deb,
# downloading it first when needed. With SHA256 the file must match it
# (a pin); without, it must match sid's signed index.
sid_deb() {
	local spec=$1 pin=${2:-} line url file sha deb
	if [ -n "$pin" ]; then
		deb=$(find "$CACHE/debs" -maxdepth 1 -name "${spec%%=*}_*.deb" 2>/dev/null | while read -r f; do
			echo "$pin  $f" | sha256sum -c --status 2>/dev/null && echo "$f"
		done | head -n 1)
		if [ -n "$deb" ]; then
			echo "$deb"
			return 0
		fi
	fi
	sid_apt_update
	line=$(sid_apt download --print-uris "$spec" 2>/dev/null | tail -n 1)
	[ -n "$line" ] || { echo "setup: sid has no $spec (pinned versions leave sid; bump the pin in $0)" >&2; return 1; }
	read -r url file _ sha <<<"$line"
	url=${url//\'/}
	sha=${sha#SHA256:}
	if [ -n "$pin" ] && [ "$sha" != "$pin" ]; then
		echo "setup: sid's index gives $file SHA256 $sha, pinned $pin" >&2
		return 1
	fi
	mkdir -p "$CACHE/debs"
	deb="$CACHE/debs/$file"
	if ! echo "$sha  $deb" | sha256sum -c --status 2>/dev/null; then
		curl -fsSL -o "$deb.part" "$url"
		echo "$sha  $deb.part" | sha256sum -c --status ||
			{ echo "setup: SHA256 mismatch for $url" >&2; rm -f "$deb.part"; return 1; }
		mv "$deb.part" "$deb"
	fi
	echo "$deb"
}
