"""Product text in any script: segmentation per document, and content neighbours in each script."""

from __future__ import annotations

import tempfile

import pandas as pd
import pytest

from cartlift.errors import InvalidParameterError
from cartlift.recommend import ContentBased, Interactions
from cartlift.recommend._content import _documents
from cartlift.recommend._text import SEGMENTER, dictionary_words, tokenize


def test_the_segmenter_is_rjieba_here() -> None:
    # the default install carries rjieba; the rest of these tests rely on it
    assert SEGMENTER == "rjieba"


@pytest.mark.parametrize(
    ("text", "tokenizer", "expected"),
    [
        # Chinese: dictionary words, not the whole title (the example)
        ("苹果手机透明保护壳", "auto", ["苹果", "手机", "透明", "保护", "壳"]),
        # mixed: words for Latin, segmented Chinese
        ("Apple iPhone 15 手机壳", "auto", ["apple", "iphone", "15", "手机", "壳"]),
        # Japanese (kana present): character bigrams over the CJK run, jieba does not know Japanese
        ("防水スニーカー", "auto", ["防水", "水ス", "スニ", "ニー", "ーカ", "カー"]),
        # English: plain lower-cased words, the same as before
        (
            "Waterproof Trail Running-Shoes, size 42",
            "auto",
            ["waterproof", "trail", "running", "shoes", "size", "42"],
        ),
        # Korean is written with spaces: words
        ("가죽 케이스 iPhone", "auto", ["가죽", "케이스", "iphone"]),
        # full-width letters and digits read as ASCII
        ("ｉＰｈｏｎｅ１５ 保护壳", "auto", ["iphone15", "保护", "壳"]),
        # the fallback: bigrams for Chinese too
        ("透明保护壳", "bigrams", ["透明", "明保", "保护", "护壳"]),
        ("壳", "bigrams", ["壳"]),
        # what cartlift did before: one token for a whole Chinese title
        ("苹果手机透明保护壳 iPhone", "words", ["苹果手机透明保护壳", "iphone"]),
    ],
)
def test_tokenize(text: str, tokenizer: str, expected: list[str]) -> None:
    assert tokenize(text, tokenizer) == expected


def test_a_long_chinese_word_is_one_token_without_pieces() -> None:
    # accurate mode: 智能手机 is one word; search mode's pieces (能手 is no word of the title)
    # would tie it to unrelated products
    assert tokenize("小米智能手机") == ["小米", "智能手机"]
    assert tokenize("卡诺维防水运动鞋", words=frozenset({"卡诺维"})) == ["卡诺维", "防水", "运动鞋"]


def test_the_choice_is_per_document() -> None:
    # the same Han characters are segmented in a Chinese document and bigrammed in a Japanese one
    assert "保护" in tokenize("透明保护壳")
    assert "明保" in tokenize("透明保护壳のケース")
    assert "明保" not in tokenize("透明保护壳")


def test_a_catalogs_names_are_kept_whole_and_not_cut_into_shared_pieces() -> None:
    # coined, transliterated brands: jieba's HMM cuts 卡诺维 into 卡 + 诺维 and 萨诺维 into 萨 + 诺维,
    # so two brands share 诺维; given as the catalog's words each is one token, with no pieces
    names = dictionary_words(["卡诺维", "萨诺维", "Apple 苹果", "ソニー", "x"])
    assert names == {"卡诺维", "萨诺维", "苹果"}  # Han runs of two or more; Japanese is left to bigrams
    assert "诺维" in tokenize("卡诺维防水运动鞋") and "诺维" in tokenize("萨诺维真皮靴子")
    first, second = tokenize("卡诺维防水运动鞋", words=names), tokenize("萨诺维真皮靴子", words=names)
    assert first[0] == "卡诺维" and second[0] == "萨诺维"
    assert not set(first) & set(second)
    # the rest of a title is segmented as without the names
    assert tokenize("小米智能手机", words=names) == tokenize("小米智能手机")


def test_content_reads_a_chinese_catalogs_brands_from_its_brand_column() -> None:
    titles = ["卡诺维防水运动鞋", "萨诺维防水运动鞋", "卡诺维真皮靴子"]
    catalog = pd.DataFrame(
        {"product_id": ["a", "b", "c"], "title": titles, "brand": ["卡诺维", "萨诺维", "卡诺维"]}
    )
    events = pd.DataFrame({"user_id": ["u"], "item_id": ["a"], "ts": [1.0]})
    shop = Interactions.from_frame(events, catalog=catalog, item_ids=catalog["product_id"])
    docs = _documents(catalog, "auto")  # what `fit` vectorises
    assert docs[0][0] == "卡诺维" and "诺维" not in {t for doc in docs for t in doc}
    # the other product of the same brand comes first, not the same shoe of the other brand
    model = ContentBased(embeddings="off").fit(shop)
    assert model.similar_items("a", k=1).to_lists()[0] == ["c"]
    # a feed of titles only: the shop names its brands with `words`, and they survive a save
    titles_only = Interactions.from_frame(
        events, catalog=catalog[["product_id", "title"]], item_ids=catalog["product_id"]
    )
    assert "诺维" in {t for doc in _documents(catalog[["product_id", "title"]], "auto") for t in doc}
    named = ContentBased(embeddings="off", words=("卡诺维", "萨诺维")).fit(titles_only)
    assert "诺维" not in {
        t for doc in _documents(catalog[["product_id", "title"]], "auto", named.words) for t in doc
    }
    with tempfile.TemporaryDirectory() as folder:
        loaded = ContentBased.load(named.save(f"{folder}/content"))
        assert list(loaded.get_params()["words"]) == ["卡诺维", "萨诺维"]


# Three groups of three products per script; within a group the titles share the product word
# but never a whole title, so only a tokenizer that reads the script can find the neighbours.
CATALOGS = {
    "zh": [
        ("华为手机透明保护壳", "防摔磁吸手机壳，黑色"),
        ("苹果手机硅胶保护壳", "轻薄手机壳，红色"),
        ("小米手机防摔保护壳", "加固四角手机壳，蓝色"),
        ("耐克男子缓震跑步鞋", "透气网面跑鞋，白色"),
        ("阿迪达斯女子轻量跑步鞋", "防滑大底跑鞋，灰色"),
        ("李宁专业竞速跑步鞋", "碳板跑鞋，绿色"),
        ("美的不锈钢电水壶", "自动断电烧水壶，银色"),
        ("苏泊尔家用电水壶", "大容量烧水壶，白色"),
        ("九阳智能恒温电水壶", "保温烧水壶，黑色"),
    ],
    "ja": [
        ("iPhone用透明スマホケース", "耐衝撃のスマホケース、黒"),
        ("手帳型スマホケース本革", "カード収納のスマホケース、赤"),
        ("シリコンスマホケース薄型", "軽いスマホケース、青"),
        ("メンズランニングシューズ軽量", "通気性のよいランニングシューズ、白"),
        ("レディースランニングシューズ厚底", "クッション性のランニングシューズ、灰"),
        ("トレイルランニングシューズ防水", "滑りにくいランニングシューズ、緑"),
        ("ステンレス電気ケトル1.0L", "自動電源オフの電気ケトル、銀"),
        ("温度調節電気ケトル", "保温機能つき電気ケトル、白"),
        ("コードレス電気ケトル大容量", "空焚き防止の電気ケトル、黒"),
    ],
    "mixed": [
        ("Apple iPhone 15 透明手机壳", "MagSafe 磁吸手机壳"),
        ("Samsung Galaxy S24 防摔手机壳", "Shockproof 手机壳"),
        ("Xiaomi 14 硅胶手机壳", "Slim 手机壳"),
        ("Nike Pegasus 40 男子跑步鞋", "Cushioned 跑步鞋"),
        ("Adidas Ultraboost 女子跑步鞋", "Boost 跑步鞋"),
        ("Asics Gel-Kayano 30 跑步鞋", "Stability 跑步鞋"),
        ("Philips 不锈钢电水壶 1.7L", "Kettle 电水壶"),
        ("Bosch TWK 电水壶", "Kettle 电水壶 with auto shut-off"),
        ("Xiaomi Mijia 恒温电水壶", "Kettle 电水壶 smart"),
    ],
    "en": [
        ("Apple clear phone case", "shockproof case for phones, black"),
        ("Samsung leather phone case", "wallet case for phones, red"),
        ("Xiaomi silicone phone case", "slim case for phones, blue"),
        ("Nike cushioned running shoes", "breathable running shoes, white"),
        ("Adidas lightweight running shoes", "grippy running shoes, grey"),
        ("Asics stability running shoes", "supportive running shoes, green"),
        ("Philips stainless electric kettle", "kettle with auto shut-off, silver"),
        ("Bosch cordless electric kettle", "large kettle, white"),
        ("Xiaomi smart electric kettle", "temperature-control kettle, black"),
    ],
}


def _shop(script: str) -> Interactions:
    rows = CATALOGS[script]
    catalog = pd.DataFrame(
        {
            "product_id": [f"q{i}" for i in range(len(rows))],
            "title": [t for t, _ in rows],
            "description": [d for _, d in rows],
        }
    )
    # one user touched one product of each group; the rest are cold products
    events = pd.DataFrame(
        {"user_id": ["u0", "u1", "u2"], "item_id": ["q0", "q3", "q6"], "ts": [1.0, 2.0, 3.0]}
    )
    return Interactions.from_frame(events, catalog=catalog, item_ids=catalog["product_id"])


GROUPS = {"q0": {"q1", "q2"}, "q3": {"q4", "q5"}, "q6": {"q7", "q8"}}


@pytest.mark.parametrize("script", sorted(CATALOGS))
@pytest.mark.parametrize("tokenizer", ["auto", "bigrams"])
def test_a_catalog_in_each_script_gives_its_real_neighbours(script: str, tokenizer: str) -> None:
    model = ContentBased(tokenizer=tokenizer, embeddings="off").fit(_shop(script))
    for item, group in GROUPS.items():
        assert set(model.similar_items(item, k=2).to_lists()[0]) == group, (script, item)
    # a user who touched a phone case is offered the two cold phone cases first
    assert set(model.recommend(["u0"], k=2).to_lists()[0]) == {"q1", "q2"}


@pytest.mark.parametrize("script", ["zh", "ja"])
def test_splitting_on_spaces_only_finds_no_neighbours_in_chinese_or_japanese(script: str) -> None:
    # what the segmentation fixes: whole titles as tokens share nothing with each other, so the
    # only "neighbour" left is the product that happens to share the colour word (noise)
    model = ContentBased(tokenizer="words", embeddings="off").fit(_shop(script))
    found = {i for i in model.similar_items("q0", k=2).to_lists()[0] if i is not None}
    assert found == {"q8"}
    assert not found & GROUPS["q0"]


def test_the_english_catalog_reads_the_same_with_the_old_tokenizer() -> None:
    shop = _shop("en")
    new = ContentBased(embeddings="off").fit(shop).item_features_
    old = ContentBased(tokenizer="words", embeddings="off").fit(shop).item_features_
    assert (new != old).nnz == 0


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"tokenizer": "jieba"}, "'tokenizer' parameter of ContentBased"),
        ({"embeddings": "yes"}, "'embeddings' parameter of ContentBased"),
        ({"embedding_weight": 1.5}, "'embedding_weight' parameter of ContentBased"),
    ],
)
def test_invalid_parameters(params: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        ContentBased(**params).fit(_shop("en"))  # type: ignore[arg-type]
