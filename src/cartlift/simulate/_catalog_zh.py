"""The catalog's words in Chinese, so a simulated store can sell with Chinese product text.

``make_catalog`` draws every attribute (brand, adjective, noun, colour, features, price tier)
the same way whatever the locale; only the words rendered from them differ. A Chinese title
joins brand, adjective and noun without spaces (``卡诺维防水运动鞋 K-512（黑色）``), as Chinese
shops write them, which is what a tokenizer that splits on spaces cannot read.

Brand names are transliterated syllable by syllable (``ka`` -> 卡, ``no`` -> 诺), the way
foreign brands get Chinese names, so the Chinese brand of a product is its English brand.
Words of custom categories that this table does not know stay in English (mixed titles).
"""

from __future__ import annotations

from typing import Final

__all__ = ["ZH_CATEGORY", "ZH_COLOURS", "ZH_ENDINGS", "ZH_SYLLABLES", "ZH_TIERS", "ZH_WORDS", "zh_word"]

# one character per syllable of ``_catalog._SYLLABLES`` and per ending of ``_ENDINGS``, all distinct,
# so distinct English brands stay distinct in Chinese
ZH_SYLLABLES: Final = (
    "卡", "诺", "维", "拉", "鲁", "特", "摩", "思", "达", "瑞", "卓", "菲", "巴", "妮", "科", "丽",
    "塔", "沃", "米", "萨", "艾", "奥", "安", "伊", "尤", "埃", "雅", "昂", "里", "威",
)  # fmt: skip
ZH_ENDINGS: Final = ("", "克", "恩", "可", "尔", "斯", "泰", "娅", "喜", "欧")
ZH_COLOURS: Final = ("黑色", "白色", "灰色", "藏青色", "红色", "绿色", "米色", "蓝色", "银色", "粉色")
ZH_TIERS: Final = {"An affordable": "实惠的", "A premium": "高端的", "A": ""}

ZH_CATEGORY: Final = {
    "phones": "手机",
    "laptops": "笔记本电脑",
    "headphones": "耳机",
    "phone-accessories": "手机配件",
    "kitchen": "厨房用品",
    "home-decor": "家居装饰",
    "shoes": "鞋靴",
    "apparel": "服装",
    "beauty": "美妆",
    "sports": "运动户外",
    "toys": "玩具",
    "books": "图书",
}

ZH_WORDS: Final = {
    # phones
    "Smartphone": "智能手机", "Phone": "手机",
    "5G": "5G", "Compact": "小屏", "Rugged": "三防", "Foldable": "折叠", "Dual-SIM": "双卡",
    "Flagship": "旗舰",
    "a bright OLED display": "明亮的OLED屏幕", "a long-lasting battery": "超长续航电池",
    "a triple-lens camera": "后置三摄", "fast wireless charging": "无线快充",
    # laptops
    "Laptop": "笔记本", "Notebook": "笔记本电脑", "Ultrabook": "超极本",
    "Lightweight": "轻量", "Gaming": "游戏", "Business": "商务", "Convertible": "二合一", "Thin": "超薄",
    "a backlit keyboard": "背光键盘", "a full-HD screen": "全高清屏幕", "a solid-state drive": "固态硬盘",
    "all-day battery life": "全天续航",
    # headphones
    "Headphones": "耳机", "Earbuds": "入耳式耳机", "Headset": "头戴式耳机",
    "Wireless": "无线", "Noise-Cancelling": "降噪", "Over-Ear": "包耳式", "Sport": "运动",
    "Studio": "录音室",
    "deep bass": "深沉低音", "active noise cancelling": "主动降噪", "a built-in microphone": "内置麦克风",
    "a foldable design": "可折叠设计",
    # phone accessories
    "Case": "手机壳", "Charger": "充电器", "Cable": "数据线", "Screen Protector": "钢化膜",
    "Power Bank": "充电宝",
    "Slim": "纤薄", "Fast-Charging": "快充", "Braided": "编织", "Magnetic": "磁吸", "Shockproof": "防摔",
    "a lifetime warranty": "终身保修", "reinforced corners": "加固四角", "USB-C on both ends": "双头USB-C",
    "a travel pouch": "旅行收纳袋",
    # kitchen
    "Blender": "破壁机", "Kettle": "电水壶", "Frying Pan": "煎锅", "Knife Set": "刀具套装",
    "Coffee Maker": "咖啡机",
    "Stainless": "不锈钢", "Non-Stick": "不粘", "Electric": "电动", "Cordless": "无绳",
    "Professional": "专业",
    "dishwasher-safe parts": "可洗碗机清洗的部件", "an auto shut-off": "自动断电",
    "an ergonomic handle": "人体工学手柄", "a two-year guarantee": "两年质保",
    # home decor
    "Lamp": "台灯", "Cushion": "抱枕", "Vase": "花瓶", "Rug": "地毯", "Wall Clock": "挂钟",
    "Scandinavian": "北欧", "Vintage": "复古", "Minimalist": "极简", "Handmade": "手工", "Boho": "波西米亚",
    "natural materials": "天然材质", "a timeless look": "经典外观", "easy-care fabric": "易打理面料",
    "a hand-finished surface": "手工打磨表面",
    # shoes
    "Sneakers": "运动鞋", "Boots": "靴子", "Sandals": "凉鞋", "Running Shoes": "跑鞋", "Loafers": "乐福鞋",
    "Waterproof": "防水", "Leather": "真皮", "Trail": "越野", "Classic": "经典",
    "a cushioned sole": "缓震鞋底", "breathable mesh": "透气网面", "a grippy outsole": "防滑大底",
    "a padded collar": "加厚鞋口",
    # apparel
    "T-Shirt": "T恤", "Jeans": "牛仔裤", "Hoodie": "连帽卫衣", "Jacket": "夹克", "Dress": "连衣裙",
    "Organic": "有机", "Slim-Fit": "修身", "Oversized": "宽松", "Stretch": "弹力",
    "soft cotton": "柔软纯棉", "reinforced seams": "加固缝线", "a relaxed fit": "休闲版型",
    "recycled fibres": "再生纤维",
    # beauty
    "Moisturizer": "保湿霜", "Serum": "精华液", "Lipstick": "口红", "Shampoo": "洗发水", "Perfume": "香水",
    "Vegan": "纯素", "Hydrating": "补水", "Fragrance-Free": "无香", "Matte": "哑光",
    "hyaluronic acid": "玻尿酸", "a light texture": "轻盈质地", "dermatologist-tested formula": "皮肤科测试配方",
    "a refillable bottle": "可替换装瓶",
    # sports
    "Yoga Mat": "瑜伽垫", "Dumbbells": "哑铃", "Bike Helmet": "骑行头盔", "Tent": "帐篷", "Backpack": "双肩包",
    "Adjustable": "可调节", "Ultralight": "超轻", "Outdoor": "户外", "Pro": "专业级",
    "a non-slip surface": "防滑表面", "weather-proof fabric": "防风雨面料", "adjustable straps": "可调肩带",
    "a carry bag": "收纳包",
    # toys
    "Building Set": "积木套装", "Puzzle": "拼图", "Board Game": "桌游", "Plush Toy": "毛绒玩具",
    "Race Car": "赛车",
    "Educational": "益智", "Wooden": "木制", "Remote-Control": "遥控", "Creative": "创意",
    "non-toxic paint": "无毒涂料", "pieces for ages 6+": "适合6岁以上", "a storage box": "收纳盒",
    "rechargeable batteries": "充电电池",
    # books
    "Novel": "小说", "Cookbook": "菜谱", "Biography": "传记", "Travel Guide": "旅行指南", "Comic": "漫画",
    "Bestselling": "畅销", "Illustrated": "图文", "Hardcover": "精装", "Paperback": "平装",
    "Award-Winning": "获奖",
    "a foreword by the author": "作者序言", "full-colour photographs": "全彩照片", "an index": "索引",
    "a ribbon bookmark": "丝带书签",
}  # fmt: skip


def zh_word(word: str) -> str:
    """``word`` in Chinese, or as given when the table does not know it (custom categories)."""
    return ZH_WORDS.get(word, word)
