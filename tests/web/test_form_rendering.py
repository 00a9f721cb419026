"""The dashboard's form renderer writes exactly what Django's form templates write."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.forms.renderers import DjangoTemplates
from django.test import SimpleTestCase

from transactions.selectors import StateCount
from transactions.web.form_rendering import DASHBOARD_FORM_RENDERER
from transactions.web.forms import ImportUploadForm, SegmentForm, TopCustomersForm, TransactionRangeForm

# A state spelled with characters the markup must escape.
STATES = [
    StateCount(state="Delhi", transactions=1234, pincodes=3, state_key="delhi"),
    StateCount(state='Tamil "Nadu" & <Co>', transactions=5, pincodes=1, state_key='tamil "nadu" & <co>'),
]


def _forms():
    """(description, make) pairs: every dashboard form, unbound and bound, valid and not."""
    return [
        ("range, unbound", lambda **kw: TransactionRangeForm(states=STATES, **kw)),
        ("range, valid", lambda **kw: TransactionRangeForm(
            {"min_amount": "10", "max_amount": "20", "state": "Delhi", "pincode": "110001", "sort": "name"},
            states=STATES, **kw)),
        ("range, field errors", lambda **kw: TransactionRangeForm(
            {"min_amount": "ten", "max_amount": "", "start": "2024-13-01", "pincode": '<b>"x"</b>'},
            states=STATES, **kw)),
        ("range, error of two fields", lambda **kw: TransactionRangeForm(
            {"min_amount": "30", "max_amount": "20", "start": "2024-05-02", "time_period": "2024-05-01"},
            states=STATES, **kw)),
        ("range, a period", lambda **kw: TransactionRangeForm(
            {"min_amount": "1", "max_amount": "2", "period": "last-30-days", "state": 'Tamil "Nadu" & <Co>'},
            states=STATES, **kw)),
        ("segment, initial", lambda **kw: SegmentForm(
            auto_id="segment_%s", initial={"min_amount": "1", "max_amount": "2", "state": "<Delhi>"}, **kw)),
        ("segment, errors", lambda **kw: SegmentForm({"min_amount": "1", "max_amount": "2", "name": ""}, **kw)),
        ("top customers, unbound", lambda **kw: TopCustomersForm(states=STATES, **kw)),
        ("top customers, errors", lambda **kw: TopCustomersForm(
            {"limit": "500", "pincode": "12a", "start": "nonsense"}, states=STATES, **kw)),
        ("top customers, unknown state", lambda **kw: TopCustomersForm(
            {"state": "Atlantis & <Mu>", "order": "total"}, states=STATES, **kw)),
        ("upload, unbound", lambda **kw: ImportUploadForm(**kw)),
        ("upload, errors", lambda **kw: ImportUploadForm(
            {"format": ""}, {"file": SimpleUploadedFile("rows.txt", b"x")}, **kw)),
    ]


def _rendered(form) -> list[str]:
    form.is_valid()
    html = [str(form.non_field_errors())]
    for field in form:
        html += [str(field.as_field_group()), str(field), str(field.errors), str(field.label_tag())]
    html += [str(field) for field in form.hidden_fields()]
    return html


class DashboardFormRendererTests(SimpleTestCase):

    def test_every_dashboard_form_renders_as_djangos_templates_render_it(self):
        django_renderer = DjangoTemplates()
        for description, make in _forms():
            with self.subTest(description):
                ours = make()
                self.assertIs(ours.renderer, DASHBOARD_FORM_RENDERER)
                self.assertEqual(_rendered(ours), _rendered(make(renderer=django_renderer)))

    def test_errors_are_shown_beside_their_fields_and_announced(self):
        form = TopCustomersForm({"limit": "500"}, states=STATES)
        self.assertFalse(form.is_valid())
        self.assertHTMLEqual(
            form["limit"].as_field_group(),
            '<label for="id_limit">Customers per pincode:</label>'
            '<div class="helptext" id="id_limit_helptext">1 to 100; 5 when empty.</div>'
            '<ul class="errorlist" id="id_limit_error"><li>Ensure this value is less than or equal to 100.</li></ul>'
            '<input type="number" name="limit" value="500" min="1" max="100" placeholder="5" aria-invalid="true"'
            ' aria-describedby="id_limit_helptext id_limit_error" id="id_limit">',
        )

    def test_values_and_labels_are_escaped(self):
        form = TransactionRangeForm({"min_amount": "1", "max_amount": "2", "pincode": '"><script>'}, states=STATES)
        form.is_valid()
        self.assertIn('value="&quot;&gt;&lt;script&gt;"', str(form["pincode"]))
        self.assertIn("Tamil &quot;Nadu&quot; &amp; &lt;Co&gt; (5 transactions, 1 pincodes)", str(form["state"]))
