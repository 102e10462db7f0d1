// The kernel's netfilter UAPI headers, in the one order that compiles: <linux/netfilter.h> pulls
// in <linux/in.h>, which clashes with glibc's <netinet/in.h> unless glibc's comes first.
// Include these through this file only.
#pragma once

#include <netinet/in.h>

// (glibc first, see above)
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_ipv4.h>
