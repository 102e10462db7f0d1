"""Label and field selectors, parsed the way the API server reads the query parameters.

Label grammar: requirements separated by commas (commas inside "( )" belong to a set):
  key | !key | key=v | key==v | key!=v | key in (a,b) | key notin (a,b) | key>n | key<n
Field selectors: term=value | term==value | term!=value, ANDed, terms limited per kind.
"""

import re

from .resources import LABEL_VALUE, qualified_name_ok


class SelectorError(ValueError):
    pass


def _split_top(text):
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


_SET_RE = re.compile(r"^\s*([^\s!=<>(),]+)\s+(in|notin)\s*\((.*)\)\s*$")
_CMP_RE = re.compile(r"^\s*([^\s!=<>(),]+)\s*(==|!=|=|>|<)\s*([^\s]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=<>(),]+)\s*$")


class LabelSelector:
    def __init__(self, text=""):
        self.text = text or ""
        self.reqs = []  # (key, op, values)
        if not self.text.strip():
            return
        for part in _split_top(self.text):
            if not part.strip():
                raise SelectorError("unable to parse requirement: found '', expected: identifier")
            self.reqs.append(self._parse(part))

    @staticmethod
    def _check_key(key):
        if not qualified_name_ok(key):
            raise SelectorError(
                f"unable to parse requirement: <nil>: Invalid value: \"{key}\": name part must "
                "consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")

    @staticmethod
    def _check_value(value):
        if len(value) > 63 or not LABEL_VALUE.match(value):
            raise SelectorError(
                f"unable to parse requirement: values[0][{value}]: Invalid value: \"{value}\": a "
                "valid label must be an empty string or consist of alphanumeric characters, '-', "
                "'_' or '.', and must start and end with an alphanumeric character")

    def _parse(self, part):
        m = _SET_RE.match(part)
        if m:
            key, op, inner = m.groups()
            self._check_key(key)
            values = [v.strip() for v in inner.split(",")]
            for v in values:
                self._check_value(v)
            return (key, op, set(values))
        m = _CMP_RE.match(part)
        if m:
            key, op, value = m.groups()
            self._check_key(key)
            if op in (">", "<"):
                try:
                    int(value)
                except ValueError:
                    raise SelectorError("unable to parse requirement: for 'Gt', 'Lt' operators, "
                                        "the value must be an integer") from None
                return (key, op, int(value))
            self._check_value(value)
            return (key, "!=" if op == "!=" else "=", value)
        m = _EXISTS_RE.match(part)
        if m:
            neg, key = m.groups()
            self._check_key(key)
            return (key, "!" if neg else "exists", None)
        raise SelectorError(f"unable to parse requirement: found '{part.strip()}', expected: "
                            "',', '!=', '==', '=', 'in', 'notin'")

    @property
    def empty(self):
        return not self.reqs

    def matches(self, labels):
        labels = labels or {}
        for key, op, val in self.reqs:
            has = key in labels
            cur = labels.get(key)
            if op == "exists" and not has:
                return False
            if op == "!" and has:
                return False
            if op == "=" and cur != val:
                return False
            if op == "!=" and has and cur == val:
                return False
            if op == "in" and (not has or cur not in val):
                return False
            if op == "notin" and has and cur in val:
                return False
            if op in (">", "<"):
                try:
                    n = int(cur)
                except (TypeError, ValueError):
                    return False
                if (op == ">" and not n > val) or (op == "<" and not n < val):
                    return False
        return True


class FieldSelector:
    def __init__(self, text, rtype):
        self.text = text or ""
        self.terms = []  # (field, op, value)
        if not self.text.strip():
            return
        for part in self.text.split(","):
            m = re.match(r"^\s*([^=!]+?)\s*(==|!=|=)\s*(.*?)\s*$", part)
            if not m:
                raise SelectorError(f"invalid selector: '{self.text}'; can't understand '{part}'")
            field, op, value = m.groups()
            if field not in rtype.field_labels:
                raise SelectorError(f"field label not supported: {field}")
            self.terms.append((field, "!=" if op == "!=" else "=", value))
        self.rtype = rtype

    @property
    def empty(self):
        return not self.terms

    def name(self):
        """The single metadata.name this selector pins, if any (used for one-object watches)."""
        for field, op, value in self.terms:
            if field == "metadata.name" and op == "=":
                return value
        return None

    def matches(self, obj):
        for field, op, value in self.terms:
            cur = self.rtype.field_value(obj, field)
            if (op == "=") != (cur == value):
                return False
        return True
