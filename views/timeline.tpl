% rebase('layout.tpl', title=title)
<h2>{{title}}</h2>
% if user and profile is not None:
  <div class="followstatus">
  % if user.user_id == profile.user_id:
    This is you!
  % elif profile.followed:
    You are currently following this user.
    <form class="inline" action="{{user_url(profile.username)}}/unfollow" method="post"><button type="submit" class="link unfollow">Unfollow user</button></form>.
  % else:
    You are not yet following this user.
    <form class="inline" action="{{user_url(profile.username)}}/follow" method="post"><button type="submit" class="link follow">Follow user</button></form>.
  % end
  </div>
% elif user and endpoint == 'timeline':
  <div class="twitbox">
    <h3>What's on your mind {{user.username}}?</h3>
    % if error:
    <div class="error"><strong>Error:</strong> {{error}}</div>
    % end
    <form action="/add_message" method="post">
      <p><input type="text" name="text" size="60" maxlength="1000" value="{{text}}" aria-label="Your message"><input type="submit" value="Share"></p>
    </form>
  </div>
% end
<ul class="messages">
% for message in messages:
  <li><img src="{{gravatar(message.email)}}" alt="" width="48" height="48"><p>
    <strong><a href="{{user_url(message.username)}}">{{message.username}}</a></strong>
    {{message.text}}
    <small>&mdash; {{format_datetime(message.pub_date)}}</small></p></li>
% end
% if not messages and first_page:
  <li class="empty"><em>There's no message so far.</em></li>
% elif not messages:
  <li class="empty"><em>There are no older messages.</em></li>
% end
</ul>
% if older or not first_page:
<nav class="pagination">
  % if not first_page:
  <a href="?" class="newest">&larr; newest messages</a>
  % end
  % if older:
  <a href="?before={{older}}" class="older" rel="next">older messages &rarr;</a>
  % end
</nav>
% end
