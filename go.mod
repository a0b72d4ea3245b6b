module github.com/crhook/crhook

go 1.26
