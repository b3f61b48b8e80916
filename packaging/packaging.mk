# Installation and packaging (included by the Makefile). See
# packaging/install.sh for the layout, docs/setup.md for use.
PREFIX  ?= /usr
DESTDIR ?=
export PREFIX DESTDIR

MAN_SRC := $(wildcard docs/*.[58].md)
MAN_OUT := $(patsubst docs/%.md,out/man/%,$(MAN_SRC))

.PHONY: man install uninstall deb

# Man pages from their markdown sources (go-md2man, from Debian).
man: $(MAN_OUT)
out/man/%: docs/%.md
	@mkdir -p out/man
	go-md2man -in $< -out $@

install: build man
	packaging/install.sh install

uninstall:
	packaging/install.sh uninstall

deb: build man
	@packaging/deb.sh
