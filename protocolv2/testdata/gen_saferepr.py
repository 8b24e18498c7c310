# Regenerates saferepr.json: the output of Celery 5.2 saferepr(v, 1024) for the
# cases in repr_test.go. Run with /usr/bin/python3 (Debian celery 5.2.6).
import json, datetime, decimal, uuid
from celery.utils.saferepr import saferepr
cases = [
 ("none", None), ("true", True), ("false", False), ("int", 5), ("negint", -42),
 ("bigint", 2**80), ("float1", 1.0), ("float_small", 1e-05), ("float_big", 1e16), ("float_15", 123456789012345.0),
 ("float_pi", 3.141592653589793), ("float_0001", 0.0001), ("float_neg0", -0.0), ("inf", float('inf')), ("ninf", float('-inf')), ("nan", float('nan')),
 ("float_1e22", 1e22), ("float_1_5e300", 1.5e300), ("float_tiny", 5e-324), ("float_01", 0.1),
 ("str", "hello"), ("str_quote", "it's"), ("str_dq", 'say "hi"'), ("str_nl", "a\nb"), ("str_backslash", "a\\b"), ("str_unicode", "héllo ☃"),
 ("bytes", b"abc"), ("bytes_bin", b"\xff\x00"), ("bytes_quote", b"it's"),
 ("list", [1, "a", None]), ("empty_list", []), ("tuple1", (7,)), ("tuple2", (2, 3)), ("empty_tuple", ()),
 ("dict", {"x": 1, "y": 2}), ("empty_dict", {}), ("nested", ([[[1]]],)), ("nested_dict", ({"a": {"b": {"c": 1}}},)),
 ("tuple_nested4", ((((1,),),),)),
 ("dt_utc", datetime.datetime(2024,1,2,3,4,5,600000,tzinfo=datetime.timezone.utc)),
 ("dt_off", datetime.datetime(2024,1,2,3,4,5,tzinfo=datetime.timezone(datetime.timedelta(hours=8)))),
 ("dt_neg", datetime.datetime(2024,1,2,3,4,tzinfo=datetime.timezone(datetime.timedelta(hours=-5, minutes=-30)))),
 ("dt_naive", datetime.datetime(2024,1,2,3,4,5)), ("dt_naive_min", datetime.datetime(2024,1,2,0,0)),
 ("dt_us_zero_sec", datetime.datetime(2024,1,2,3,4,0,5)),
 ("date", datetime.date(2024,1,2)), ("time", datetime.time(3,4,5)), ("time_min", datetime.time(3,4)), ("time_us", datetime.time(3,4,0,7)), ("time_zero", datetime.time(0,0)),
 ("decimal", decimal.Decimal("1.10")), ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
 ("long_str", ("word " * 300,)), ("long_list", (list(range(400)),)), ("long_dict", ({"k%03d" % i: i for i in range(200)},)),
 ("long_bytes", (b"x" * 2000,)), ("kw", {"a": [1, 2.5, "s"], "b": {"c": None}}),
]
out = {}
for name, v in cases:
    out[name] = saferepr(v, 1024)
json.dump(out, open(__import__("os").path.join(__import__("os").path.dirname(__file__), "saferepr.json"), "w"), indent=0, ensure_ascii=False)
for k, v in out.items(): print(k, "=>", v[:200])
