"""A form renderer that writes the dashboard's few form templates in Python, byte for byte.

Django renders each field of a form through templates: the field group (``field.html``), its
label, its error list and its widget, and a select's every option through one more include.
On the report pages that was a third of the whole page's time (a py-spy profile of the warm
range report: template rendering 69% of the page, Django's field rendering 32%), more than
the API takes for the same query. This renderer writes those templates' markup itself and
leaves every other template (a fieldset, a radio list, a file input, ...) to Django's.

The markup is Django's own, so labels, ``aria-describedby``, ``aria-invalid``, help texts and
errors beside their fields are unchanged: ``tests/web/test_form_rendering.py`` renders every
dashboard form, bound and unbound, valid and not, with both renderers and compares the HTML.
Values are escaped as the templates escape them (``conditional_escape``, after ``localize``
for what a ``{{ }}`` would localize).
"""

from __future__ import annotations

from html import escape

from django.forms.renderers import DjangoTemplates
from django.utils.formats import localize
from django.utils.functional import Promise

FIELD_TEMPLATE = "django/forms/field.html"
LABEL_TEMPLATE = "django/forms/label.html"
SELECT_TEMPLATE = "django/forms/widgets/select.html"
OPTION_TEMPLATE = "django/forms/widgets/select_option.html"
ERROR_LIST_TEMPLATES = frozenset({"django/forms/errors/list/default.html", "django/forms/errors/list/ul.html"})
# Widgets whose template is input.html alone (``{% include "django/forms/widgets/input.html" %}``).
INPUT_TEMPLATES = frozenset(
    f"django/forms/widgets/{name}.html"
    for name in ("input", "text", "number", "hidden", "email", "search", "tel", "url")
)


def _escaped(value) -> str:
    """Django's ``conditional_escape``, without a SafeString and a laziness check per value (a
    form writes a few hundred values; that was a quarter of its time)."""
    if isinstance(value, Promise):
        value = str(value)
    if hasattr(value, "__html__"):
        return value.__html__()
    return escape(str(value))


def _shown(value) -> str:
    """``{{ value }}``: localized, then escaped unless already safe."""
    return _escaped(localize(value))


def _attribute_value(value) -> str:
    """``{{ value|stringformat:'s' }}``: the value as text (not localized), escaped unless safe."""
    return _escaped(value)


def _attributes(attrs: dict | None) -> str:
    """``django/forms/attrs.html`` and ``widgets/attrs.html``: False leaves an attribute out,
    True writes its name alone."""
    if not attrs:
        return ""
    return "".join(
        f" {_shown(name)}" if value is True else f' {_shown(name)}="{_attribute_value(value)}"'
        for name, value in attrs.items()
        if value is not False
    )


class DashboardFormRenderer(DjangoTemplates):
    """``DjangoTemplates``, with the templates the dashboard's forms use written in Python."""

    def render(self, template_name, context, request=None):
        if template_name in INPUT_TEMPLATES:
            return self._input(context["widget"])
        if template_name == FIELD_TEMPLATE and not context["field"].use_fieldset:
            return self._field_group(context["field"])
        if template_name == LABEL_TEMPLATE:
            return self._label(context)
        if template_name in ERROR_LIST_TEMPLATES:
            return self._error_list(context["errors"], context["error_class"])
        if template_name == SELECT_TEMPLATE and self._options_are_plain(context["widget"]):
            return self._select(context["widget"])
        return super().render(template_name, context, request=request)

    @staticmethod
    def _field_group(field) -> str:
        # field.html's lines, blank ones included, then stripped as every rendering is.
        label = field.label_tag() if field.label else ""
        help_text = ""
        if field.help_text:
            id_attribute = f' id="{_shown(field.auto_id)}_helptext"' if field.auto_id else ""
            help_text = f'<div class="helptext"{id_attribute}>{field.help_text}</div>'
        # str() first, as a template's {{ }} does: a BoundField's __html__ is its field group.
        errors, widget = _escaped(str(field.errors)), _escaped(str(field))
        return f"\n  {label}\n\n{help_text}\n{errors}\n{widget}\n".strip()

    @staticmethod
    def _label(context: dict) -> str:
        if not context["use_tag"]:
            return _shown(context["label"]).strip()
        tag = _shown(context["tag"])
        return f"<{tag}{_attributes(context['attrs'])}>{_shown(context['label'])}</{tag}>".strip()

    @staticmethod
    def _error_list(errors, error_class) -> str:
        if not errors:
            return ""
        id_attribute = f' id="{_shown(errors.field_id)}_error"' if errors.field_id else ""
        items = "".join(f"<li>{_shown(error)}</li>" for error in errors)
        return f'<ul class="{_shown(error_class)}"{id_attribute}>{items}</ul>'

    @staticmethod
    def _input(widget: dict) -> str:
        value = "" if widget["value"] is None else f' value="{_attribute_value(widget["value"])}"'
        return (
            f'<input type="{_shown(widget["type"])}" name="{_shown(widget["name"])}"{value}'
            f'{_attributes(widget["attrs"])}>'
        )

    @staticmethod
    def _options_are_plain(widget: dict) -> bool:
        return all(
            option["template_name"] == OPTION_TEMPLATE for _, options, _ in widget["optgroups"] for option in options
        )

    @staticmethod
    def _select(widget: dict) -> str:
        parts = [f'<select name="{_shown(widget["name"])}"{_attributes(widget["attrs"])}>']
        for group_name, options, _ in widget["optgroups"]:
            if group_name:
                parts.append(f'\n  <optgroup label="{_shown(group_name)}">')
            for option in options:
                parts.append(
                    f'\n  <option value="{_attribute_value(option["value"])}"{_attributes(option["attrs"])}>'
                    f'{_shown(option["label"])}</option>\n'
                )
            if group_name:
                parts.append("\n  </optgroup>")
        parts.append("\n</select>")
        return "".join(parts).strip()


# One for every form: its template engine (for what is not written here) is made once.
DASHBOARD_FORM_RENDERER = DashboardFormRenderer()
