# rpm/rpm.mk: man pages, the reproducible source tarball, SRPM and RPMs,
# rpmlint and the package checks. Included from the top-level Makefile:
#     -include rpm/rpm.mk
# Nothing here writes into the repository except `make man` (into bin/man,
# like the binaries): tarballs and rpmbuild's topdir go to RPM_OUT.

RPM_OUT     ?= /var/cache/crhook/rpm
RPM_TOPDIR   = $(RPM_OUT)/rpmbuild
MAN_OUT     ?= bin/man
MAN_SRC     := $(wildcard docs/*.[1-8].md)
MAN_PAGES   := $(MAN_SRC:docs/%.md=$(MAN_OUT)/%)

# Version from the spec; Release 1 when HEAD is the tag vVERSION, else a
# snapshot release dated by the last commit (reproducible, sorts before 1).
RPM_VERSION := $(shell sed -n 's/^Version:[[:space:]]*//p' rpm/crhook.spec)
RPM_EPOCH   := $(or $(SOURCE_DATE_EPOCH),$(shell git log -1 --format=%ct 2>/dev/null),0)
RPM_RELEASE ?= $(shell if git describe --exact-match --tags --match 'v$(RPM_VERSION)' HEAD >/dev/null 2>&1; \
	then echo 1; else echo 0.$$(date -u -d @$(RPM_EPOCH) +%Y%m%d)git$$(git rev-parse --short=7 HEAD 2>/dev/null || echo 0); fi)
RPM_TARBALL  = $(RPM_OUT)/crhook-$(RPM_VERSION).tar.gz

# Fedora/CentOS define the SELinux macros (selinux-policy-devel); elsewhere
# (Debian) load rpm/macros.compat. BuildRequires can only be checked where
# rpm is the package manager: skip them when rpm-build is not an installed RPM.
RPM_COMPAT  := $(if $(shell rpm --eval '%{?selinux_modules_install}' 2>/dev/null),,--load=$(CURDIR)/rpm/macros.compat)
RPM_NODEPS  := $(shell rpm -q --quiet rpm-build 2>/dev/null || echo --nodeps)
# No SELinux sources yet (another change adds them): build without the subpackage.
RPM_WITH    := $(if $(wildcard selinuxpolicy/crhook.te),,--without selinux)
# env -u: make variables given on our command line travel in MAKEFLAGS and
# would reach the SELinux devel Makefile that %build runs (PREFIX, NAME...).
RPMBUILD     = env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u MAKEOVERRIDES \
	rpmbuild --define '_topdir $(RPM_TOPDIR)' $(RPM_COMPAT) $(RPM_NODEPS) $(RPM_WITH)

.PHONY: man install-man dist srpm rpm rpmlint rpm-check

man: $(MAN_PAGES)

$(MAN_OUT)/%: docs/%.md
	@mkdir -p $(@D)
	go-md2man -in $< -out $@

# For `make install` on Debian and other non-RPM hosts.
install-man: man
	for p in $(MAN_PAGES); do \
		n=$${p##*.}; install -D -m 0644 $$p $(DESTDIR)$(MANDIR)/man$$n/$${p##*/}; done

dist:
	SOURCE_DATE_EPOCH=$(RPM_EPOCH) bash rpm/dist.sh $(RPM_OUT) $(RPM_VERSION) $(RPM_RELEASE)

srpm: dist
	@$(if $(RPM_WITH),echo "rpm.mk: selinuxpolicy/crhook.te missing: building without crhook-selinux" >&2)
	rm -rf $(RPM_TOPDIR)
	mkdir -p $(RPM_TOPDIR)/SOURCES $(RPM_TOPDIR)/SPECS
	cp $(RPM_TARBALL) $(RPM_TOPDIR)/SOURCES/
	tar -xzf $(RPM_TARBALL) -O crhook-$(RPM_VERSION)/rpm/crhook.spec >$(RPM_TOPDIR)/SPECS/crhook.spec
	$(RPMBUILD) -bs $(RPM_TOPDIR)/SPECS/crhook.spec

# Rebuild from the SRPM, as COPR and mock do: proves the SRPM is complete.
rpm: srpm
	$(RPMBUILD) --rebuild $(RPM_TOPDIR)/SRPMS/crhook-$(RPM_VERSION)-$(RPM_RELEASE)*.src.rpm
	@ls -1 $(RPM_TOPDIR)/SRPMS/*.rpm $(RPM_TOPDIR)/RPMS/*/*.rpm

rpmlint: rpm
	rpmlint -r rpm/crhook.rpmlintrc rpm/crhook.spec $(RPM_TOPDIR)/SRPMS/*.rpm $(RPM_TOPDIR)/RPMS/*/*.rpm

rpm-check:
	bash tests/rpm/check.sh
