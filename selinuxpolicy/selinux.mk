# Build and check crhook's SELinux policy module.
#
# Included by the top-level Makefile; works on its own too:
#   make -f selinuxpolicy/selinux.mk selinux         # -> selinuxpolicy/crhook.pp.bz2
#   make -f selinuxpolicy/selinux.mk selinux-check   # tests/selinux/check.sh
#
# The module is built by the distribution's policy devel Makefile
# (selinux-policy-devel on Fedora, selinux-policy-dev on Debian) in a
# scratch directory, so no tmp/ or .pp litter lands in the tree.

CRHOOK_SELINUX_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
SELINUX_DEVEL_MAKEFILE ?= /usr/share/selinux/devel/Makefile

CRHOOK_SELINUX_SRC := $(addprefix $(CRHOOK_SELINUX_DIR)/,crhook.te crhook.if crhook.fc)

.PHONY: selinux selinux-check selinux-clean

selinux: $(CRHOOK_SELINUX_DIR)/crhook.pp.bz2

# env -u: the devel Makefile must not see our make variables
# (PREFIX, NAME, TYPE... given on the command line travel in MAKEFLAGS).
$(CRHOOK_SELINUX_DIR)/crhook.pp.bz2: $(CRHOOK_SELINUX_SRC)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	cp $(CRHOOK_SELINUX_SRC) "$$tmp"/ && \
	env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u MAKEOVERRIDES \
		make -s -C "$$tmp" -f $(SELINUX_DEVEL_MAKEFILE) crhook.pp && \
	bzip2 -9 -c "$$tmp/crhook.pp" >$@.tmp && mv $@.tmp $@ && \
	echo "built $@"

selinux-check:
	bash $(CRHOOK_SELINUX_DIR)/../tests/selinux/check.sh

selinux-clean:
	rm -f $(CRHOOK_SELINUX_DIR)/crhook.pp.bz2 $(CRHOOK_SELINUX_DIR)/crhook.pp.bz2.tmp
