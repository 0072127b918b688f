"""The toy point types the loss tests share: an open curve and a closed
one meeting at corner 3."""

CUSTOM = dict(
    name='toy',
    num_keypoints=7,
    curves=[
        dict(name='arc', indices=[0, 1, 2, 3], closed=False),
        dict(name='loop', indices=[3, 4, 5, 6], closed=True),
    ],
    corners=[3],
)
