#!/bin/sh
# A client.authentication.k8s.io credential plugin for the tests: answers with the token in
# $PLUGIN_TOKEN, in the apiVersion KUBERNETES_EXEC_INFO asked for, and records that info.
[ -n "$PLUGIN_LOG" ] && printf '%s\n' "$KUBERNETES_EXEC_INFO" >> "$PLUGIN_LOG"
version=$(printf '%s' "$KUBERNETES_EXEC_INFO" | sed -n 's/.*"apiVersion":"\([^"]*\)".*/\1/p')
printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"%s"}}\n' \
  "$version" "$PLUGIN_TOKEN"
