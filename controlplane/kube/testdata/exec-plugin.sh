#!/bin/sh
# A credential plugin for the tests. Modes (first argument):
#   token       print a token credential (v1beta1 or v1, from KUBERNETES_EXEC_INFO's apiVersion);
#               EXEC_TOKEN sets the token, EXEC_EXPIRY the expirationTimestamp
#   echo-info   print the token "info:<KUBERNETES_EXEC_INFO>" and HELPER_MODE in the token
#   fail        write to stderr and exit 3
#   garbage     print something that is not JSON
# Each run appends a line to $EXEC_COUNT_FILE when it is set.
[ -n "$EXEC_COUNT_FILE" ] && echo run >> "$EXEC_COUNT_FILE"
version=$(printf '%s' "$KUBERNETES_EXEC_INFO" | sed -n 's/.*"apiVersion":"\([^"]*\)".*/\1/p')
case "$1" in
  token)
    expiry=""
    [ -n "$EXEC_EXPIRY" ] && expiry=",\"expirationTimestamp\":\"$EXEC_EXPIRY\""
    printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"%s"%s}}\n' \
      "$version" "${EXEC_TOKEN:-exec-token}" "$expiry"
    ;;
  echo-info)
    info=$(printf '%s' "$KUBERNETES_EXEC_INFO" | sed 's/\\/\\\\/g; s/"/\\"/g')
    printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"%s|%s"}}\n' \
      "$version" "$HELPER_MODE" "$info"
    ;;
  fail)
    echo "first line" >&2
    echo "plugin says: no credentials for you" >&2
    exit 3
    ;;
  garbage)
    echo "this is not json"
    ;;
esac
